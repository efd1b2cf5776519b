// UTF-8 validation (RFC 3629 well-formed sequences) and replacement of ill-formed bytes.
#include "agent/export/utf8_sanitizer.h"

#include <cstdint>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

namespace sonde::agent::exporting {
namespace {

// Length of the well-formed sequence starting at s[i], 0 when ill-formed.
size_t SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool MakeValidUtf8(std::string* s) {
  if (IsValidUtf8(*s)) return false;
  std::string out;
  out.reserve(s->size() + 8);
  size_t i = 0;
  while (i < s->size()) {
    const size_t n = SequenceLength(*s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(*s, i, n);
      i += n;
    }
  }
  *s = std::move(out);
  return true;
}

int SanitizeStringFields(google::protobuf::Message* m) {
  using google::protobuf::FieldDescriptor;
  const auto* d = m->GetDescriptor();
  const auto* refl = m->GetReflection();
  int changed = 0;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      if (f->is_repeated()) {
        std::string scratch;
        for (int k = 0; k < refl->FieldSize(*m, f); ++k) {
          if (IsValidUtf8(refl->GetRepeatedStringReference(*m, f, k, &scratch))) continue;
          std::string v = refl->GetRepeatedString(*m, f, k);
          MakeValidUtf8(&v);
          refl->SetRepeatedString(m, f, k, std::move(v));
          ++changed;
        }
      } else if (!IsValidUtf8(refl->GetStringReference(*m, f, nullptr))) {
        std::string v = refl->GetString(*m, f);
        MakeValidUtf8(&v);
        refl->SetString(m, f, std::move(v));
        ++changed;
      }
    } else if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int k = 0; k < refl->FieldSize(*m, f); ++k) changed += SanitizeStringFields(refl->MutableRepeatedMessage(m, f, k));
      } else if (refl->HasField(*m, f)) {
        changed += SanitizeStringFields(refl->MutableMessage(m, f));
      }
    }
  }
  return changed;
}

}  // namespace sonde::agent::exporting
