#include "engine/chat_template.h"

#include <array>

namespace cyllm::engine {
namespace {

constexpr std::array<std::pair<ChatFormat, std::string_view>, 6> kNames{{
    {ChatFormat::Llama2, "llama2"},
    {ChatFormat::Llama3, "llama3"},
    {ChatFormat::ChatML, "chatml"},
    {ChatFormat::Mistral, "mistral"},
    {ChatFormat::Gemma, "gemma"},
    {ChatFormat::Phi3, "phi3"},
}};

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// Families without a system role get the system prompt in front of the first user turn.
std::string merged_user(const std::string& system, const std::string& user) {
  return system.empty() ? user : system + "\n\n" + user;
}

}  // namespace

std::string_view chat_format_name(ChatFormat f) {
  for (const auto& [fmt, name] : kNames)
    if (fmt == f) return name;
  return "?";
}

std::optional<ChatFormat> parse_chat_format(std::string_view name) {
  for (const auto& [fmt, n] : kNames)
    if (n == name) return fmt;
  if (name == "qwen" || name == "qwen2") return ChatFormat::ChatML;
  return std::nullopt;
}

std::vector<std::string> chat_format_names() {
  std::vector<std::string> out;
  for (const auto& [fmt, name] : kNames) out.emplace_back(name);
  return out;
}

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  if (contains(t, "<|im_start|>")) return ChatFormat::ChatML;
  if (contains(t, "<|start_header_id|>")) return ChatFormat::Llama3;
  if (contains(t, "<start_of_turn>")) return ChatFormat::Gemma;
  if (contains(t, "<|user|>") && contains(t, "<|end|>")) return ChatFormat::Phi3;
  if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? ChatFormat::Llama2 : ChatFormat::Mistral;
  return std::nullopt;
}

Result<std::string> apply_chat_template(ChatFormat f, std::span<const ChatMessage> messages,
                                        bool add_generation_prompt) {
  std::string system;
  std::size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    first = 1;
  }
  for (std::size_t i = first; i < messages.size(); ++i) {
    const auto& r = messages[i].role;
    if (r != "user" && r != "assistant")
      return Error(Errc::InvalidRequest, "chat message " + std::to_string(i) + " has role \"" + r +
                                             "\"; expected user or assistant (system only first)");
  }
  std::string out;
  switch (f) {
    case ChatFormat::ChatML:
      if (!system.empty()) out += "<|im_start|>system\n" + system + "<|im_end|>\n";
      for (std::size_t i = first; i < messages.size(); ++i)
        out += "<|im_start|>" + messages[i].role + "\n" + messages[i].content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatFormat::Llama3:
      if (!system.empty())
        out += "<|start_header_id|>system<|end_header_id|>\n\n" + system + "<|eot_id|>";
      for (std::size_t i = first; i < messages.size(); ++i)
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" +
               messages[i].content + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case ChatFormat::Llama2: {
      // <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
      // The first <s> is the tokenizer's BOS.
      bool open = false;  // a turn has been written and closed by </s>
      bool sys_pending = !system.empty();
      for (std::size_t i = first; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
          if (open) out += "<s>";
          out += "[INST] ";
          if (sys_pending) {
            out += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
            sys_pending = false;
          }
          out += m.content + " [/INST]";
        } else {
          out += " " + m.content + " </s>";
          open = true;
        }
      }
      break;
    }
    case ChatFormat::Mistral: {
      // [INST] {system}\n\n{user} [/INST]{assistant}</s>[INST] {user} [/INST]
      bool sys_pending = !system.empty();
      for (std::size_t i = first; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
          out += "[INST] " + (sys_pending ? merged_user(system, m.content) : m.content) + " [/INST]";
          sys_pending = false;
        } else {
          out += m.content + "</s>";
        }
      }
      break;
    }
    case ChatFormat::Gemma: {
      bool sys_pending = !system.empty();
      for (std::size_t i = first; i < messages.size(); ++i) {
        const auto& m = messages[i];
        const bool user = m.role == "user";
        std::string content = user && sys_pending ? merged_user(system, m.content) : m.content;
        if (user) sys_pending = false;
        out += "<start_of_turn>" + std::string(user ? "user" : "model") + "\n" + content +
               "<end_of_turn>\n";
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      break;
    }
    case ChatFormat::Phi3:
      if (!system.empty()) out += "<|system|>\n" + system + "<|end|>\n";
      for (std::size_t i = first; i < messages.size(); ++i)
        out += "<|" + messages[i].role + "|>\n" + messages[i].content + "<|end|>\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
  }
  // Llama 2 and Mistral open the assistant's turn with [/INST] itself.
  return out;
}

}  // namespace cyllm::engine
