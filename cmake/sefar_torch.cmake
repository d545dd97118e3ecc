# Finds LibTorch as SEFAR_TORCH selects (see the top-level CMakeLists.txt) and prints one summary line.
# Sets what find_package(Torch) sets (TORCH_LIBRARIES, Torch_VERSION, ...) and, for models/, the cache
# paths SEFAR_GLOO_INCLUDE and SEFAR_NCCL_INCLUDE of the c10d backends' headers (NOTFOUND when absent).

set(SEFAR_TORCH system CACHE STRING "LibTorch to build against: system (Debian's 1.13, CPU) or venv (PyTorch 2.x)")
set_property(CACHE SEFAR_TORCH PROPERTY STRINGS system venv)
set(SEFAR_TORCH_PYTHON ${PROJECT_SOURCE_DIR}/.venv/bin/python
    CACHE FILEPATH "SEFAR_TORCH=venv: the Python whose torch package brings LibTorch")

# Switching in place would mix the two LibTorch's cached paths (Torch_DIR, library locations).
if(DEFINED CACHE{SEFAR_TORCH_CONFIGURED} AND NOT SEFAR_TORCH_CONFIGURED STREQUAL SEFAR_TORCH)
  message(FATAL_ERROR "${CMAKE_BINARY_DIR} was configured with SEFAR_TORCH=${SEFAR_TORCH_CONFIGURED}: "
                      "configure SEFAR_TORCH=${SEFAR_TORCH} in another build directory")
endif()
set(SEFAR_TORCH_CONFIGURED ${SEFAR_TORCH} CACHE INTERNAL "")

if(SEFAR_TORCH STREQUAL "system")
  find_package(Torch REQUIRED)
elseif(SEFAR_TORCH STREQUAL "venv")
  if(NOT EXISTS ${SEFAR_TORCH_PYTHON})
    message(FATAL_ERROR "SEFAR_TORCH=venv: no ${SEFAR_TORCH_PYTHON} (bash scripts/setup_python.sh torch)")
  endif()
  execute_process(COMMAND ${SEFAR_TORCH_PYTHON} -c "import torch;print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE sefar_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_VARIABLE sefar_torch_error RESULT_VARIABLE sefar_torch_rc)
  if(NOT sefar_torch_rc EQUAL 0)
    message(FATAL_ERROR "SEFAR_TORCH=venv: ${SEFAR_TORCH_PYTHON} cannot import torch "
                        "(bash scripts/setup_python.sh torch):\n${sefar_torch_error}")
  endif()
  # The wheel's LibTorch links CUDA: its Caffe2 config finds the toolkit (FindCUDA, then
  # enable_language(CUDA)) and fails without one. Point both at the toolkit unless already given.
  if(NOT DEFINED CUDAToolkit_ROOT)
    if(DEFINED ENV{CUDA_HOME})
      set(CUDAToolkit_ROOT $ENV{CUDA_HOME})
    else()
      set(CUDAToolkit_ROOT /usr/local/cuda)
    endif()
  endif()
  if(NOT DEFINED CUDA_TOOLKIT_ROOT_DIR AND EXISTS ${CUDAToolkit_ROOT}/bin/nvcc)
    set(CUDA_TOOLKIT_ROOT_DIR ${CUDAToolkit_ROOT} CACHE PATH "CUDA toolkit (FindCUDA)")
  endif()
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS ${CUDAToolkit_ROOT}/bin/nvcc)
    set(CMAKE_CUDA_COMPILER ${CUDAToolkit_ROOT}/bin/nvcc CACHE FILEPATH "CUDA compiler")
  endif()
  # Only for CUDA sources, which sefar has none of: the H100's architecture spares Caffe2 a GPU
  # detection that fails on CPU machines and its fallback list, which names sm_50 (gone in CUDA 13).
  if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT DEFINED TORCH_CUDA_ARCH_LIST)
    set(TORCH_CUDA_ARCH_LIST 9.0)
  endif()
  # TorchConfig looks for Caffe2 and its libraries with PATHS, which come after the system directories:
  # where Debian's libtorch-dev is installed too, it would find Debian's 1.13 there. Found first here,
  # in the wheel only, they stay the wheel's.
  set(Caffe2_DIR ${sefar_torch_prefix}/Caffe2 CACHE PATH "Caffe2 config of SEFAR_TORCH=venv" FORCE)
  cmake_path(GET sefar_torch_prefix PARENT_PATH sefar_torch_lib)
  cmake_path(GET sefar_torch_lib PARENT_PATH sefar_torch_lib)
  find_library(TORCH_LIBRARY torch PATHS ${sefar_torch_lib}/lib NO_DEFAULT_PATH)
  find_library(c10_LIBRARY c10 PATHS ${sefar_torch_lib}/lib NO_DEFAULT_PATH)
  find_library(C10_CUDA_LIBRARY c10_cuda PATHS ${sefar_torch_lib}/lib NO_DEFAULT_PATH)
  find_package(Torch REQUIRED CONFIG PATHS ${sefar_torch_prefix} NO_DEFAULT_PATH)
  foreach(lib TORCH_LIBRARY c10_LIBRARY)
    cmake_path(IS_PREFIX TORCH_INSTALL_PREFIX "${${lib}}" NORMALIZE sefar_in_wheel)
    if(NOT sefar_in_wheel)
      message(FATAL_ERROR "SEFAR_TORCH=venv: ${lib} is ${${lib}}, not in ${TORCH_INSTALL_PREFIX}")
    endif()
  endforeach()
  # The wheel's libtorch.so and libtorch_cpu.so export the std::filesystem functions of their own,
  # statically linked libstdc++ (pytorch/pytorch#133437). Named after them, the system libstdc++ loses:
  # std::filesystem::remove_all then runs libtorch.so's copy, which jumps to address 0. Named first,
  # it is the one every std:: symbol binds to.
  list(PREPEND TORCH_LIBRARIES stdc++)
else()
  message(FATAL_ERROR "SEFAR_TORCH=${SEFAR_TORCH}: valid are system and venv")
endif()

# c10d backend headers (models/distributed.cpp). Gloo: both LibTorch builds have the Gloo process
# group, but the PyTorch wheel lacks gloo's own headers; Debian's libgloo-dev (2022) provides them for
# both. The wheel's ProcessGroupGloo holds gloo objects only by pointer and distributed.cpp references
# no gloo symbol, so the older headers change no layout it uses (checked: the two-process test passes).
# -DSEFAR_GLOO_INCLUDE=NO compiles Gloo out. NCCL: with a CUDA LibTorch, first from the wheel's
# nvidia-nccl package (the NCCL it loads).
find_path(SEFAR_GLOO_INCLUDE gloo/context.h)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  find_path(SEFAR_NCCL_INCLUDE nccl.h HINTS ${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include ENV NCCL_INCLUDE_DIR
            ${CUDAToolkit_INCLUDE_DIRS})
  find_path(SEFAR_CUDNN_INCLUDE cudnn_version.h HINTS ${TORCH_INSTALL_PREFIX}/../nvidia/cudnn/include
            ${CUDAToolkit_INCLUDE_DIRS})
endif()

# One line saying what this build links. SEFAR_TORCH_CUDA: LibTorch has CUDA (models/device_cuda.cpp);
# SEFAR_NVTX_INCLUDE: NVTX 3's headers (header-only) for the profiler's ranges (graph/profile.cpp).
set(SEFAR_TORCH_CUDA OFF)
set(sefar_cuda "no")
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(SEFAR_TORCH_CUDA ON)
  set(sefar_cuda "yes ${CUDAToolkit_VERSION}")
  find_path(SEFAR_NVTX_INCLUDE nvtx3/nvToolsExt.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_ROOT}/include)
endif()
set(sefar_nvtx "no")
if(SEFAR_NVTX_INCLUDE)
  set(sefar_nvtx "yes")
endif()
set(sefar_cudnn "no")
if(SEFAR_CUDNN_INCLUDE)
  file(STRINGS ${SEFAR_CUDNN_INCLUDE}/cudnn_version.h sefar_v REGEX "define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
  string(REGEX REPLACE "[^;]* ([0-9]+);[^;]* ([0-9]+);[^;]* ([0-9]+)" "\\1.\\2.\\3" sefar_cudnn "${sefar_v}")
endif()
set(sefar_nccl "no")
if(SEFAR_NCCL_INCLUDE)
  file(STRINGS ${SEFAR_NCCL_INCLUDE}/nccl.h sefar_v REGEX "define NCCL_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE "[^;]* ([0-9]+);[^;]* ([0-9]+);[^;]* ([0-9]+)" "\\1.\\2.\\3" sefar_nccl "${sefar_v}")
endif()
set(sefar_gloo "no")
if(SEFAR_GLOO_INCLUDE)
  set(sefar_gloo "yes")
endif()
message(STATUS "sefar: LibTorch ${Torch_VERSION} (SEFAR_TORCH=${SEFAR_TORCH}), CUDA ${sefar_cuda}, "
               "cuDNN ${sefar_cudnn}, NCCL ${sefar_nccl}, Gloo ${sefar_gloo}, NVTX ${sefar_nvtx}")
