// `sefar prepare DATASET ...`: turning a downloaded dataset into clips and split lists.
#pragma once

namespace sefar::tools {

// Usage text of `sefar prepare`.
extern const char* const kPrepareUsage;

// argv as main received it (argv[1] == "prepare"). Returns the exit status (see kPrepareUsage).
int cmd_prepare(int argc, char** argv);

}  // namespace sefar::tools
