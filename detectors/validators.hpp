#pragma once
// Checksums and plausibility checks that separate real identifiers from numbers that merely
// look like them. Pure functions over strings.

#include <string>
#include <string_view>

namespace leakscope::detectors {

bool all_digits(std::string_view s);
bool all_hex(std::string_view s);
// ISO/IEC 7812 Luhn check (IMEI, ICCID, bank cards).
bool luhn_valid(std::string_view digits);
// IMEI: 15 digits, Luhn, a Type Allocation Code whose reporting-body prefix is allocated
// (GSMA TS.06 §6.2), and not one digit repeated.
bool imei_valid(std::string_view s);
// MEID: 14 hex digits with a manufacturer code in A0–FF (3GPP2 S.R0048 §3.2), or a
// decimal-only MEID (18 digits is not handled: it is a different encoding).
bool meid_valid(std::string_view s);
// A Mobile Country Code in use (ITU-T E.212 list, Annex to OB 1162).
bool mcc_valid(std::string_view three_digits);
// IMSI: 15 digits starting with a valid MCC.
bool imsi_valid(std::string_view s);
// ICCID: "89" (telecom), 19 or 20 digits, Luhn over the first 19 (ITU-T E.118).
bool iccid_valid(std::string_view s);
// PRC resident identity card number (GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check
// character, a region code, and a birth date that exists and is not in the future.
bool prc_id_valid(std::string_view s);
// PRC mobile number: 11 digits, 1[3-9]x.
bool prc_mobile_valid(std::string_view s);
// 16 to 19 digits with a valid Luhn check.
bool bank_card_valid(std::string_view s);
// A MAC address (":" or "-" separated, or 12 hex digits) that is not all zero, broadcast, or
// Android's placeholder 02:00:00:00:00:00. Returns the 12 lower-case hex digits or "".
std::string_view normalized_mac(std::string_view s, char (&out)[13]);
// 8-4-4-4-12 hex UUID that is not all zero (a limited ad-tracking ID).
bool uuid_valid(std::string_view s);
bool email_valid(std::string_view s);
// "com.tencent.mm": at least two dot-separated lower-case labels, starting with a letter.
bool package_name_valid(std::string_view s);

}  // namespace leakscope::detectors
