// Parsers of fetch inputs: hf:// sources, URLs, lock files, index pages, header values.
#include <doctest/doctest.h>

#include "cyllm/fetch.h"

using namespace cyllm;
using namespace cyllm::fetch;

TEST_CASE("hf:// sources map to the resolve endpoint") {
  auto a = parse_hf_source("hf://TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q4_0.gguf", "https://huggingface.co");
  REQUIRE(a.ok());
  CHECK(a->url == "https://huggingface.co/TheBloke/Llama-2-7B-GGUF/resolve/main/llama-2-7b.Q4_0.gguf");
  CHECK(a->hf_repo == "TheBloke/Llama-2-7B-GGUF");
  CHECK(a->hf_revision == "main");
  CHECK(a->filename == "llama-2-7b.Q4_0.gguf");
  CHECK(a->hugging_face);

  auto b = parse_hf_source("hf://org/repo/sub/dir/model.safetensors@refs/pr/1", "http://127.0.0.1:8080/");
  REQUIRE(b.ok());
  CHECK(b->url == "http://127.0.0.1:8080/org/repo/resolve/refs%2Fpr%2F1/sub/dir/model.safetensors");
  CHECK(b->hf_file == "sub/dir/model.safetensors");
  CHECK(b->filename == "model.safetensors");

  for (const char* bad : {"hf://org/repo", "hf://org/repo/", "hf://org/../x/f", "hf://org/repo/a/../b",
                          "hf://org/repo/file@", "hf:///repo/file"}) {
    CAPTURE(bad);
    auto r = parse_hf_source(bad, "https://huggingface.co");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::BadSource);
  }
}

TEST_CASE("URL sources") {
  auto a = parse_source("https://files.example/x/torch-2.4.0-cp312-cp312-linux_x86_64.whl?sig=1", "");
  REQUIRE(a.ok());
  CHECK(a->filename == "torch-2.4.0-cp312-cp312-linux_x86_64.whl");
  CHECK_FALSE(parse_source("ftp://x/y", "").ok());
  CHECK_FALSE(parse_source("/etc/passwd", "").ok());
  CHECK(url_host("https://User@Example.COM:443/x") == "example.com");
  CHECK(url_host("http://127.0.0.1:8080/x") == "127.0.0.1:8080");
  CHECK(url_host("http://localhost:8080") == "localhost:8080");
  CHECK(resolve_url("https://a.example/x/y", "/z") == "https://a.example/z");
  CHECK(resolve_url("https://a.example/x/y", "z?q=1") == "https://a.example/x/z?q=1");
  CHECK(resolve_url("https://a.example/x/y", "http://b.example/") == "http://b.example/");
}

TEST_CASE("lock files: pins, hashes, continuations, indexes") {
  auto l = parse_lock(
      "# comment\n--index-url https://pypi.org/simple\n--extra-index-url https://download.pytorch.org/whl/cu121\n"
      "torch==2.4.0+cu121 \\\n    --hash=sha256:" + std::string(64, 'a') + " \\\n    --hash=sha256:" +
      std::string(64, 'B') + "\nnumpy==1.26.4 ; python_version >= \"3.9\"\n"
      "local @ https://example.org/local-1.0-py3-none-any.whl --hash=sha256:" + std::string(64, 'c') + "\n");
  REQUIRE(l.ok());
  REQUIRE(l->index_urls.size() == 2);
  CHECK(l->index_urls[0] == "https://pypi.org/simple");
  REQUIRE(l->requirements.size() == 3);
  CHECK(l->requirements[0].name == "torch");
  CHECK(l->requirements[0].version == "2.4.0+cu121");
  REQUIRE(l->requirements[0].sha256s.size() == 2);
  CHECK(l->requirements[0].sha256s[1] == std::string(64, 'b'));
  CHECK(l->requirements[1].version == "1.26.4");
  CHECK(l->requirements[2].url == "https://example.org/local-1.0-py3-none-any.whl");

  auto range = parse_lock("grpcio[x]<1.71,>=1.62.1\n");
  REQUIRE(range.ok());
  CHECK(range->requirements[0].name == "grpcio");
  CHECK(range->requirements[0].version.empty());
  CHECK(range->requirements[0].specifier == "<1.71,>=1.62.1");
  auto bad = parse_lock("torch>=>2.0\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == Errc::BadSource);
  CHECK(bad.error().message().find("torch>=>2.0") != std::string::npos);
  CHECK_FALSE(parse_lock("x==1 --hash=md5:abc\n").ok());
  CHECK_FALSE(parse_lock("x==1 --hash=sha256:1234\n").ok());
}

TEST_CASE("simple index pages: PEP 691 JSON and PEP 503 HTML") {
  auto j = parse_index_page(
      R"({"meta":{"api-version":"1.0"},"name":"x","files":[{"filename":"x-1.0-py3-none-any.whl","url":"../../files/x-1.0-py3-none-any.whl","hashes":{"sha256":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"}}]})",
      "application/vnd.pypi.simple.v1+json", "https://idx.example/simple/x/");
  REQUIRE(j.ok());
  REQUIRE(j->size() == 1);
  CHECK((*j)[0].url == "https://idx.example/files/x-1.0-py3-none-any.whl");
  CHECK((*j)[0].sha256 == "abababababababababababababababababababababababababababababababab");
  auto h = parse_index_page(
      "<html><body><a href=\"/f/x-1.0-py3-none-any.whl#sha256=cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\">x-1.0-py3-none-any.whl</a><br/>\n"
      "<a href='x-1.0.tar.gz'>x-1.0.tar.gz</a></body></html>",
      "text/html", "http://127.0.0.1:9/simple/x/");
  REQUIRE(h.ok());
  REQUIRE(h->size() == 2);
  CHECK((*h)[0].url == "http://127.0.0.1:9/f/x-1.0-py3-none-any.whl");
  CHECK((*h)[0].sha256 == "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
  CHECK((*h)[1].url == "http://127.0.0.1:9/simple/x/x-1.0.tar.gz");
  CHECK_FALSE(parse_index_page("{", "application/vnd.pypi.simple.v1+json", "http://x/").ok());
  // A fragment-only link is page navigation, not a file: skipped, never an empty URL.
  auto nav = parse_index_page("<a href=\"#top\">top</a><a href=\"#\xc8x-1.0.whl\">x</a><a href=\"y-1.0.tar.gz\">y-1.0.tar.gz</a>",
                              "text/html", "http://x/simple/y/");
  REQUIRE(nav.ok());
  REQUIRE(nav->size() == 1);
  CHECK((*nav)[0].url == "http://x/simple/y/y-1.0.tar.gz");
  // A hash that is not one is refused, not used as the expected sha256 of the download.
  auto bad = parse_index_page("<a href=\"x-1.0-py3-none-any.whl#sha256=cd\">x</a>", "text/html", "http://x/");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().to_string() ==
        "fetch.bad_source: index page \"http://x/\" gives \"x\" the sha256 \"cd\", not 64 hex digits");
}

TEST_CASE("header values: Content-Range and Retry-After") {
  auto cr = parse_content_range("bytes 100-199/200");
  REQUIRE(cr);
  CHECK(*cr->first == 100);
  CHECK(*cr->last == 199);
  CHECK(*cr->total == 200);
  auto star = parse_content_range("bytes */1234");
  REQUIRE(star);
  CHECK_FALSE(star->first);
  CHECK(*star->total == 1234);
  CHECK_FALSE(parse_content_range("bytes 5-1/10"));
  CHECK_FALSE(parse_content_range("bytes 0-10/10"));
  CHECK_FALSE(parse_content_range("items 0-1/2"));

  auto now = std::chrono::system_clock::from_time_t(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  CHECK(parse_retry_after("3", now) == std::chrono::milliseconds(3000));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now) == std::chrono::milliseconds(10000));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == std::chrono::milliseconds(0));
  CHECK_FALSE(parse_retry_after("soon", now));
}

TEST_CASE("sizes for --gc") {
  CHECK(parse_size("0").value() == 0);
  CHECK(parse_size("10G").value() == 10ull << 30);
  CHECK(parse_size("1.5MiB").value() == 3ull << 19);
  CHECK(parse_size("512k").value() == 512ull << 10);
  CHECK_FALSE(parse_size("ten").ok());
  CHECK_FALSE(parse_size("-1G").ok());
}

TEST_CASE("sha256") {
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
