// Tool turns of a conversation as plain text, for a model that is given no
// tools: the panel of a MoA pipeline reads what the client's tools did
// without being able to call them (and an upstream that was sent tool
// messages but no tool definitions would refuse them).
#ifndef MOA_LIB_LLM_TOOL_TEXT_H_
#define MOA_LIB_LLM_TOOL_TEXT_H_

#include <vector>

#include "lib/llm/types.h"

namespace moa::llm {

// The conversation with every tool call and tool result written out in
// words: an assistant message's calls follow its text, each as
// "[called tool NAME with arguments ARGS]"; consecutive tool results become
// one user message, each as "[result of tool NAME]\n" + its text. Messages
// without tool parts are unchanged; roles keep alternating as they did.
std::vector<Message> ToolTurnsAsText(const std::vector<Message>& conversation);

// Whether the conversation has any tool call or tool result.
bool HasToolTurns(const std::vector<Message>& conversation);

}  // namespace moa::llm

#endif  // MOA_LIB_LLM_TOOL_TEXT_H_
