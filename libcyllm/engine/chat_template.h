// Chat templates: the common families' prompt formats written out in C++ (no Jinja).
//
// A GGUF file carries its template as Jinja text in `tokenizer.chat_template`; running
// Jinja is a non-goal, so the family is recognised by marker strings and formatted here:
//   "<|im_start|>"                -> chatml  (Qwen, SmolLM, many fine-tunes)
//   "<|start_header_id|>"         -> llama3
//   "<start_of_turn>"             -> gemma
//   "<|user|>" and "<|end|>"      -> phi3
//   "[INST]" with "<<SYS>>"       -> llama2
//   "[INST]" without              -> mistral
// The public functions are declared in cyllm/engine.h.
#pragma once

#include "cyllm/engine.h"
