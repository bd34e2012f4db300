#include "lib/lexical_path.h"

#include <string_view>
#include <vector>

namespace tern {

std::string NormalizePath(const std::string& abs) {
  std::vector<std::string_view> parts;
  std::string_view s(abs);
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == '/') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != '/') ++j;
    std::string_view part = s.substr(i, j - i);
    if (part.empty() || part == ".") {
    } else if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(part);
    }
    i = j;
  }
  std::string out;
  out.reserve(abs.size());
  for (std::string_view p : parts) {
    out += '/';
    out += p;
  }
  if (out.empty()) out.push_back('/');  // (not `= "/"`: gcc 12 -O3 warns a bogus -Wrestrict on it)
  return out;
}

}  // namespace tern
