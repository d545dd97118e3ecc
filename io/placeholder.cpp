// Keeps the io layer a valid CMake target while it has no sources of its own.
