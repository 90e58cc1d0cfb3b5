// Early-return helpers for absl::Status (Abseil 20220623 has none of its own).
#ifndef MOA_LIB_BASE_STATUS_MACROS_H_
#define MOA_LIB_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOA_STATUS_CONCAT_INNER_(a, b) a##b
#define MOA_STATUS_CONCAT_(a, b) MOA_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define MOA_RETURN_IF_ERROR(expr)                                                   \
  do {                                                                              \
    if (::absl::Status moa_status_ = (expr); !moa_status_.ok()) return moa_status_; \
  } while (0)

// `MOA_ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr, or
// returns its status.
#define MOA_ASSIGN_OR_RETURN(lhs, expr) \
  MOA_ASSIGN_OR_RETURN_IMPL_(MOA_STATUS_CONCAT_(moa_statusor_, __LINE__), lhs, expr)
#define MOA_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                               \
  if (!var.ok()) return std::move(var).status();   \
  lhs = *std::move(var)

#endif  // MOA_LIB_BASE_STATUS_MACROS_H_
