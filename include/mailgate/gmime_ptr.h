// gmime_ptr.h — RAII for GMime objects (g_object_unref) and the raw header
// values of a GMime object, shared by the MIME re-encoder and the ARF parser.
// Only for sources linked with mailgate_mime (GMime).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gmime/gmime.h>

namespace mailgate {

template <class T>
struct GUnref {
  void operator()(T* p) const {
    if (p != nullptr) g_object_unref(p);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GUnref<T>>;

// The raw values of every header field `name` (case-insensitive) of
// `object`, in order.
std::vector<std::string> rawHeaderValues(GMimeObject* object, const char* name);

}  // namespace mailgate
