#include "util/errors.h"

namespace sefar::util {

ParamError::ParamError(const std::string& param, const std::string& reason)
    : std::invalid_argument("param \"" + param + "\": " + reason), param_(param), reason_(reason) {}

WriteError::WriteError(const std::string& path, const std::string& reason)
    : std::runtime_error("cannot write " + path + ": " + reason), path_(path), reason_(reason) {}

WriteError::WriteError(const std::string& message) : std::runtime_error(message), reason_(message) {}

}  // namespace sefar::util
