#include "tests/support/json.h"

#include <doctest/doctest.h>

namespace egressd::test {
namespace {

TEST_CASE("Json parses a deny-log line field by field") {
  const Json line = Json::parse(
      R"({"time":"2026-01-02T03:04:05.678Z","event":"deny","session":12,"pid":4242,"ancestors":["/bin/sh","/usr/bin/make"],)"
      R"("url":null,"ok":false,"big":true,"rules_considered":[],"port":443})");
  CHECK(line["event"].str() == "deny");
  CHECK(line["event"] == "deny");
  CHECK(line["session"].num() == 12);
  CHECK(line["pid"].integer() == 4242);
  CHECK(line["port"] == 443);
  CHECK(line["ancestors"].size() == 2);
  CHECK(line["ancestors"].at(1).str() == "/usr/bin/make");
  CHECK(line["ancestors"].contains("/bin/sh"));
  CHECK(line["url"].is_null());
  CHECK_FALSE(line["ok"].boolean());
  CHECK(line["big"].boolean());
  CHECK(line["rules_considered"].size() == 0);
  CHECK(line.has("time"));
  CHECK_FALSE(line.has("binary"));
  CHECK(line.keys().front() == "time");
}

TEST_CASE("Json decodes every string escape, \\u escapes and surrogate pairs to UTF-8") {
  const Json value = Json::parse(R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20ac", "\ud83d\ude00", "\u0041"])");
  CHECK(value.at(0).str() == "a\"b\\c/d\b\f\n\r\t");
  CHECK(value.at(1).str() == "\xC3\xA9\xE2\x82\xAC");
  CHECK(value.at(2).str() == "\xF0\x9F\x98\x80");
  CHECK(value.at(3).str() == "A");
}

TEST_CASE("Json parses numbers in every JSON form") {
  const Json value = Json::parse(" [0, -1, 1.5, -2.5e3, 1E2, 0.25e-1] ");
  CHECK(value.at(0).num() == 0);
  CHECK(value.at(1).integer() == -1);
  CHECK(value.at(2).num() == 1.5);
  CHECK(value.at(3).num() == -2500);
  CHECK(value.at(4).num() == 100);
  CHECK(value.at(5).num() == doctest::Approx(0.025));
  CHECK_THROWS(value.at(2).integer());
}

TEST_CASE("Json rejects text that is not exactly one JSON value, showing the text") {
  const char* bad[] = {"",
                       "{",
                       "{\"a\":1,}",
                       "[1,]",
                       "01",
                       "1.",
                       "\"abc",
                       "\"\\x\"",
                       "\"\\ud800\"",
                       "tru",
                       "{\"a\" 1}",
                       "[1] x",
                       "{a:1}",
                       "\"a\nb\"",
                       "-",
                       "{\"a\":1,\"a\":2}"};
  for (const char* text : bad) {
    CAPTURE(text);
    CHECK_THROWS_WITH(Json::parse(text), doctest::Contains("invalid JSON"));
  }
  CHECK_THROWS_WITH(Json::parse("{\"a\":}"), doctest::Contains("{\"a\":}"));
}

TEST_CASE("Json accessors on the wrong type or a missing key throw naming the value") {
  const Json value = Json::parse(R"({"a":"x","n":[1]})");
  CHECK_THROWS_WITH(value["missing"], doctest::Contains("no member 'missing'"));
  CHECK_THROWS_WITH(value["a"].num(), doctest::Contains("\"x\""));
  CHECK_THROWS(value["n"].at(1));
  CHECK_THROWS(value["n"]["k"]);
  CHECK_FALSE(value["a"] == 1);
  CHECK_FALSE(value["n"] == "x");
}

TEST_CASE("Json::dump writes compact JSON that parses back to the same text") {
  const std::string text = R"({"s":"q\"\n\u0001","a":[1,2.5,true,false,null],"o":{}})";
  const std::string dumped = Json::parse(text).dump();
  CHECK(dumped == R"({"s":"q\"\n\u0001","a":[1,2.5,true,false,null],"o":{}})");
  CHECK(Json::parse(dumped).dump() == dumped);
}

TEST_CASE("parse_json_lines parses each line") {
  const std::vector<Json> lines = parse_json_lines({R"({"a":1})", R"({"a":2})"});
  REQUIRE(lines.size() == 2);
  CHECK(lines[1]["a"] == 2);
}

}  // namespace
}  // namespace egressd::test
