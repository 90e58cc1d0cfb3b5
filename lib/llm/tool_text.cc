#include "lib/llm/tool_text.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace moa::llm {

bool HasToolTurns(const std::vector<Message>& conversation) {
  for (const Message& m : conversation) {
    if (m.role == Role::kTool || !m.tool_calls.empty()) return true;
  }
  return false;
}

std::vector<Message> ToolTurnsAsText(const std::vector<Message>& conversation) {
  std::vector<Message> out;
  out.reserve(conversation.size());
  // The name of each call so far, so a result can say which tool it is from.
  auto name_of = [&conversation](const std::string& id) -> std::string {
    for (const Message& m : conversation) {
      for (const ToolCall& c : m.tool_calls) {
        if (c.id == id) return c.name;
      }
    }
    return "(unknown call)";
  };
  bool last_was_result = false;
  for (const Message& m : conversation) {
    if (m.role == Role::kTool) {
      std::string text =
          absl::StrCat("[result of tool ", name_of(m.tool_call_id), "]\n", m.content);
      if (last_was_result) {
        absl::StrAppend(&out.back().content, "\n\n", text);
      } else {
        out.push_back({Role::kUser, std::move(text)});
      }
      last_was_result = true;
      continue;
    }
    last_was_result = false;
    Message plain{m.role, m.content};
    plain.images = m.images;
    for (const ToolCall& c : m.tool_calls) {
      absl::StrAppend(&plain.content, plain.content.empty() ? "" : "\n", "[called tool ", c.name,
                      " with arguments ", c.arguments.empty() ? "{}" : c.arguments, "]");
    }
    out.push_back(std::move(plain));
  }
  return out;
}

}  // namespace moa::llm
