#include "lib/base/redact.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moa {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactTest, UrlUserinfoAndSecretQueryValuesAreHidden) {
  EXPECT_EQ(RedactUrl("https://user:hunter2@api.example.com/v1"), "https://***@api.example.com/v1");
  EXPECT_EQ(RedactUrl("http://127.0.0.1:8000/v1"), "http://127.0.0.1:8000/v1");
  EXPECT_EQ(RedactUrl("https://h/v1?api_key=s3cret&x=1&Token=t#frag"),
            "https://h/v1?api_key=***&x=1&Token=***#frag");
  // An @ in the path is not userinfo.
  EXPECT_EQ(RedactUrl("https://h/v1/a@b"), "https://h/v1/a@b");
}

TEST(RedactTest, PeerTextLosesTokensHeadersAndTheSecret) {
  std::string text = SanitizePeerText(
      "bad request; echo: Authorization: Bearer sk-live-123 and key sk-abc and bearer xyz",
      "sk-abc");
  EXPECT_THAT(text, Not(HasSubstr("sk-live-123")));
  EXPECT_THAT(text, Not(HasSubstr("sk-abc")));
  EXPECT_THAT(text, Not(HasSubstr("xyz")));
  EXPECT_THAT(text, HasSubstr("[redacted]"));
}

TEST(RedactTest, PeerTextIsCutOnACharacterBoundaryAndCleaned) {
  std::string long_text(2000, 'a');
  std::string out = SanitizePeerText(long_text, "", 100);
  EXPECT_EQ(out, std::string(100, 'a') + "...");
  // "é" is two bytes: a cut between them drops the whole character.
  out = SanitizePeerText(std::string(99, 'a') + "\xc3\xa9" + "zz", "", 100);
  EXPECT_EQ(out, std::string(99, 'a') + "...");
  EXPECT_EQ(SanitizePeerText("line1\r\nline2\x01\xff!"), "line1  line2 !");
}

}  // namespace
}  // namespace moa
