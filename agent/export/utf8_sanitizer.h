// Protobuf `string` fields must hold UTF-8: the server checks every record of a batch exactly as
// protobuf's parser does and refuses the whole frame otherwise. Payload bytes from the wire (an
// HTTP path in Latin-1, a binary Redis key) are not always UTF-8, so records are made valid
// before they are serialized for the server.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/message.h>

namespace sonde::agent::exporting {

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Replaces every byte that does not start a well-formed sequence with U+FFFD, in place. Returns
// true when something was replaced.
bool MakeValidUtf8(std::string* s);

// MakeValidUtf8 on every singular and repeated string field of `m` and of its sub-messages.
// Returns the number of fields changed.
int SanitizeStringFields(google::protobuf::Message* m);

}  // namespace sonde::agent::exporting
