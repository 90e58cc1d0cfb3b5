// What the shared store's key directory (a peer) and an admin client may
// send: a key record read back from Redis, and an admin request's limits.
// Neither may abort; a record that parses writes back as one that parses
// the same.
#include <cstddef>
#include <cstdint>

#include "services/orchestrator/key_directory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  // The first line names the key, as the hash field does.
  const size_t newline = text.find('\n');
  const absl::string_view name = newline == absl::string_view::npos ? "k" : text.substr(0, newline);
  const absl::string_view body =
      newline == absl::string_view::npos ? text : text.substr(newline + 1);
  absl::StatusOr<moa::orchestrator::KeyRecord> record =
      moa::orchestrator::ParseKeyRecord(name, body);
  if (record.ok()) {
    const std::string again = moa::orchestrator::KeyRecordJson(*record);
    absl::StatusOr<moa::orchestrator::KeyRecord> back =
        moa::orchestrator::ParseKeyRecord(name, again);
    if (again.size() <= moa::orchestrator::kMaxKeyRecordBytes &&
        (!back.ok() || moa::orchestrator::KeyRecordJson(*back) != again)) {
      __builtin_trap();
    }
    (void)moa::json::Dump(moa::orchestrator::KeyRecordView(*record));
  }
  absl::StatusOr<moa::json::Json> admin = moa::json::Parse(body, 8);
  if (admin.ok()) {
    moa::orchestrator::KeyLimits limits;
    (void)moa::orchestrator::ReadKeyLimits(*admin, {"name"}, &limits);
    (void)moa::json::Dump(moa::orchestrator::KeyLimitsJson(limits));
  }
  return 0;
}
