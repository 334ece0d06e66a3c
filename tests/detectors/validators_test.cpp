#include "detectors/validators.hpp"

#include <doctest/doctest.h>

using namespace leakscope::detectors;

TEST_CASE("Luhn") {
  CHECK(luhn_valid("490154203237518"));
  CHECK(luhn_valid("4111111111111111"));
  CHECK_FALSE(luhn_valid("490154203237519"));
  CHECK_FALSE(luhn_valid("49015420323751x"));
  CHECK_FALSE(luhn_valid(""));
}

TEST_CASE("IMEI: Luhn and an allocated reporting body") {
  CHECK(imei_valid("490154203237518"));
  CHECK(imei_valid("865432101234564"));
  CHECK_FALSE(imei_valid("865432101234567"));  // check digit
  CHECK_FALSE(imei_valid("000000000000000"));  // repeated digit
  CHECK_FALSE(imei_valid("202311231234560"));  // RBI 20 is not allocated
  CHECK_FALSE(imei_valid("86543210123456"));   // 14 digits
}

TEST_CASE("MEID, MCC, IMSI, ICCID") {
  CHECK(meid_valid("A0000012345678"));
  CHECK_FALSE(meid_valid("10000012345678"));
  CHECK(mcc_valid("460"));
  CHECK(mcc_valid("310"));
  CHECK_FALSE(mcc_valid("999"));
  CHECK(imsi_valid("460001234567890"));
  CHECK_FALSE(imsi_valid("999001234567890"));
  CHECK(iccid_valid("8986001234567890120"));
  CHECK_FALSE(iccid_valid("8986001234567890121"));
  CHECK_FALSE(iccid_valid("1986001234567890120"));
}

TEST_CASE("PRC resident ID: ISO 7064 MOD 11-2 and a real birth date") {
  CHECK(prc_id_valid("11010519491231002X"));
  CHECK(prc_id_valid("11010519491231002x"));
  CHECK_FALSE(prc_id_valid("110105194912310021"));  // check character
  CHECK(prc_id_valid("44030820000229001X"));         // 29 Feb 2000
  CHECK_FALSE(prc_id_valid("440308190002290013"));   // 29 Feb 1900 does not exist
  CHECK_FALSE(prc_id_valid("440308300001010010"));   // born in 3000
}

TEST_CASE("phones, cards, MACs, UUIDs, emails, packages") {
  CHECK(prc_mobile_valid("13812345678"));
  CHECK_FALSE(prc_mobile_valid("12812345678"));
  CHECK_FALSE(prc_mobile_valid("1381234567"));
  CHECK(bank_card_valid("6222021234567890128"));
  CHECK_FALSE(bank_card_valid("4111111111111"));
  char buf[13];
  CHECK(normalized_mac("02:1A:11:F0:5B:3C", buf) == "021a11f05b3c");
  CHECK(normalized_mac("02-1a-11-f0-5b-3c", buf) == "021a11f05b3c");
  CHECK(normalized_mac("021a11f05b3c", buf) == "021a11f05b3c");
  CHECK(normalized_mac("00:00:00:00:00:00", buf).empty());
  CHECK(normalized_mac("ff:ff:ff:ff:ff:ff", buf).empty());
  CHECK(normalized_mac("02:00:00:00:00:00", buf).empty());  // Android's placeholder
  CHECK(normalized_mac("02:1a:11-f0:5b:3c", buf).empty());
  CHECK(uuid_valid("a1b2c3d4-0000-4a5b-9c8d-112233445566"));
  CHECK_FALSE(uuid_valid("00000000-0000-0000-0000-000000000000"));
  CHECK(email_valid("zhang.san@example.cn"));
  CHECK_FALSE(email_valid("user@localhost"));
  CHECK_FALSE(email_valid("a@b@c.com"));
  CHECK(package_name_valid("com.tencent.mm"));
  CHECK_FALSE(package_name_valid("Com.Tencent"));
  CHECK_FALSE(package_name_valid("single"));
}
