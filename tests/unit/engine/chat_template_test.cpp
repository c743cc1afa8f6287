#include <doctest/doctest.h>

#include "cyllm/engine.h"

using namespace cyllm;
using namespace cyllm::engine;

namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "Hello."},
    {"user", "2+2?"},
};

std::string fmt(ChatFormat f, const std::vector<ChatMessage>& m = kConversation, bool gen = true) {
  auto r = apply_chat_template(f, m, gen);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("chatml") {
  CHECK(fmt(ChatFormat::ChatML) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(fmt(ChatFormat::ChatML, kConversation, false).ends_with("2+2?<|im_end|>\n"));
}

TEST_CASE("llama3") {
  CHECK(fmt(ChatFormat::Llama3) ==
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("llama2") {
  CHECK(fmt(ChatFormat::Llama2) ==
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] 2+2? [/INST]");
  const std::vector<ChatMessage> no_sys = {{"user", "Hi"}};
  CHECK(fmt(ChatFormat::Llama2, no_sys) == "[INST] Hi [/INST]");
}

TEST_CASE("mistral") {
  CHECK(fmt(ChatFormat::Mistral) == "[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] 2+2? [/INST]");
}

TEST_CASE("gemma") {
  CHECK(fmt(ChatFormat::Gemma) ==
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\n2+2?<end_of_turn>\n"
        "<start_of_turn>model\n");
}

TEST_CASE("phi3") {
  CHECK(fmt(ChatFormat::Phi3) ==
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n"
        "<|user|>\n2+2?<|end|>\n<|assistant|>\n");
}

TEST_CASE("unknown roles and a late system message are refused") {
  const std::vector<ChatMessage> bad = {{"user", "a"}, {"tool", "b"}};
  auto r = apply_chat_template(ChatFormat::ChatML, bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::InvalidRequest);
  CHECK(r.error().message().find("\"tool\"") != std::string::npos);
  const std::vector<ChatMessage> late = {{"user", "a"}, {"system", "b"}};
  CHECK_FALSE(apply_chat_template(ChatFormat::Llama3, late).ok());
}

TEST_CASE("the family is recognised from tokenizer.chat_template") {
  CHECK(detect_chat_format("{% for m in messages %}{{'<|im_start|>' + m['role']}}") == ChatFormat::ChatML);
  CHECK(detect_chat_format("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}") ==
        ChatFormat::Llama3);
  CHECK(detect_chat_format("{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}") == ChatFormat::Llama2);
  CHECK(detect_chat_format("{{ bos_token }}{% if m %}{{ '[INST] ' + content + ' [/INST]' }}") ==
        ChatFormat::Mistral);
  CHECK(detect_chat_format("{{ '<start_of_turn>' + role + '\\n' }}") == ChatFormat::Gemma);
  CHECK(detect_chat_format("{{'<|user|>' + '\\n' + message['content'] + '<|end|>'}}") == ChatFormat::Phi3);
  CHECK_FALSE(detect_chat_format("{{ messages }}").has_value());
  CHECK_FALSE(detect_chat_format("").has_value());
}

TEST_CASE("names round-trip; qwen is an alias of chatml") {
  for (const auto& n : chat_format_names()) {
    auto f = parse_chat_format(n);
    REQUIRE(f.has_value());
    CHECK(chat_format_name(*f) == n);
  }
  CHECK(parse_chat_format("qwen") == ChatFormat::ChatML);
  CHECK_FALSE(parse_chat_format("vicuna").has_value());
}
