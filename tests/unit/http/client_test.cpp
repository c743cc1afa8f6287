// The SSE reader used by the load generator and the tests.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cyllm/http_client.h"

using namespace cyllm::http;

TEST_CASE("SSE events are split across arbitrary byte boundaries") {
  const std::string stream =
      ": comment\n\ndata: {\"a\":1}\n\ndata: line1\r\ndata: line2\r\n\r\nevent: x\nid: 3\ndata:nospace\n\ndata: [DONE]\n\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, stream.size()}) {
    SseReader r;
    std::vector<std::string> events;
    for (std::size_t i = 0; i < stream.size(); i += step)
      r.feed(std::string_view(stream).substr(i, step), [&](std::string_view d) { events.emplace_back(d); });
    REQUIRE(events.size() == 4);
    CHECK(events[0] == "{\"a\":1}");
    CHECK(events[1] == "line1\nline2");
    CHECK(events[2] == "nospace");
    CHECK(events[3] == "[DONE]");
  }
}
