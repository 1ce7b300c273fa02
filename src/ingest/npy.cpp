#include "ingest/npy.hpp"

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.hpp"

namespace cohortnet::ingest {

std::int64_t NpyArray::size() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

// The header is a Python dict literal: {'descr': '<f8', 'fortran_order': False, 'shape': (70, 892), }
// We parse exactly the three keys numpy writes (any order, single or double quotes).
struct HeaderParser {
  const std::string& s;
  const std::string& path;
  std::size_t i = 0;

  [[noreturn]] void bad(const std::string& what) const {
    fail("file ", path, ": not a valid .npy header (", what, ") in: ", s);
  }
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) bad(std::string("expected '") + c + "'");
  }
  std::string str() {
    ws();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad("expected a quoted string");
    char q = s[i++];
    std::size_t j = s.find(q, i);
    if (j == std::string::npos) bad("unterminated string");
    std::string out = s.substr(i, j - i);
    i = j + 1;
    return out;
  }
  std::string word() {
    ws();
    std::size_t j = i;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    std::string out = s.substr(i, j - i);
    i = j;
    return out;
  }
  std::int64_t integer() {
    ws();
    std::size_t j = i;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i) bad("expected a dimension");
    std::int64_t v = std::stoll(s.substr(i, j - i));
    i = j;
    while (i < s.size() && (s[i] == 'L' || s[i] == 'l')) ++i;  // Python 2 longs
    return v;
  }
};

struct Dtype {
  char kind = 0;       // f, i, u, b, U, S
  std::size_t size = 0;  // bytes per element
};

Dtype parse_descr(const std::string& d, const std::string& path) {
  if (d.size() < 2) fail("file ", path, ": unsupported dtype '", d, "'");
  const char order = d[0];
  const char kind = d[1];
  if (kind == 'O')
    fail("file ", path, ": object array (dtype '", d, "', pickled Python objects) cannot be read; save a numeric "
         "array (e.g. np.save(f, a.astype('f8')))");
  if (order == '>')
    fail("file ", path, ": big-endian data (dtype '", d, "') is not supported; convert with a.astype('<f8')");
  if (order != '<' && order != '|' && order != '=')
    fail("file ", path, ": unsupported dtype '", d, "'");
  std::size_t n = 0;
  try {
    n = std::size_t(std::stoul(d.substr(2)));
  } catch (...) {
    fail("file ", path, ": unsupported dtype '", d, "'");
  }
  Dtype t{kind, n};
  switch (kind) {
    case 'f':
      if (n != 2 && n != 4 && n != 8) fail("file ", path, ": unsupported float width in dtype '", d, "'");
      break;
    case 'i':
    case 'u':
      if (n != 1 && n != 2 && n != 4 && n != 8) fail("file ", path, ": unsupported integer width in dtype '", d, "'");
      break;
    case 'b':
      if (n != 1) fail("file ", path, ": unsupported dtype '", d, "'");
      break;
    case 'U':
      t.size = n * 4;  // UTF-32 code units
      break;
    case 'S':
      break;
    default:
      fail("file ", path, ": unsupported dtype '", d, "' (need float, integer, bool or string)");
  }
  return t;
}

double half_to_double(std::uint16_t h) {
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0) return sign * std::ldexp(double(m), -24);
  if (e == 31) return m ? std::nan("") : sign * HUGE_VAL;
  return sign * std::ldexp(double(m + 1024), e - 25);
}

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // the machine is little-endian (checked below)
  return v;
}

double element(const char* p, const Dtype& t) {
  switch (t.kind) {
    case 'f':
      if (t.size == 8) return load<double>(p);
      if (t.size == 4) return double(load<float>(p));
      return half_to_double(load<std::uint16_t>(p));
    case 'i':
      if (t.size == 8) return double(load<std::int64_t>(p));
      if (t.size == 4) return double(load<std::int32_t>(p));
      if (t.size == 2) return double(load<std::int16_t>(p));
      return double(load<std::int8_t>(p));
    case 'u':
      if (t.size == 8) return double(load<std::uint64_t>(p));
      if (t.size == 4) return double(load<std::uint32_t>(p));
      if (t.size == 2) return double(load<std::uint16_t>(p));
      return double(load<std::uint8_t>(p));
    default:  // 'b'
      return *p ? 1.0 : 0.0;
  }
}

void append_utf8(std::string& out, std::uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xc0 | (c >> 6));
    out += char(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += char(0xe0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3f));
    out += char(0x80 | (c & 0x3f));
  } else {
    out += char(0xf0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3f));
    out += char(0x80 | ((c >> 6) & 0x3f));
    out += char(0x80 | (c & 0x3f));
  }
}

}  // namespace

NpyArray parse_npy_header(const std::string& bytes, const std::string& path, std::size_t& data_offset) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    fail("file ", path, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = std::size_t(static_cast<unsigned char>(bytes[8])) |
                 (std::size_t(static_cast<unsigned char>(bytes[9])) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("file ", path, ": truncated .npy header");
    for (int k = 3; k >= 0; --k) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + std::size_t(k)]);
    start = 12;
  } else {
    fail("file ", path, ": unsupported .npy format version ", major);
  }
  if (bytes.size() < start + header_len)
    fail("file ", path, ": truncated .npy header (", bytes.size(), " bytes, header needs ", start + header_len, ")");
  const std::string header = bytes.substr(start, header_len);
  data_offset = start + header_len;

  NpyArray a;
  a.path = path;
  HeaderParser p{header, path};
  bool have_descr = false, have_order = false, have_shape = false;
  p.expect('{');
  while (!p.eat('}')) {
    std::string key = p.str();
    p.expect(':');
    if (key == "descr") {
      p.ws();
      if (p.i < header.size() && header[p.i] == '[')
        fail("file ", path, ": structured dtype (record array) is not supported; save a plain numeric array");
      a.descr = p.str();
      have_descr = true;
    } else if (key == "fortran_order") {
      std::string w = p.word();
      if (w != "True" && w != "False") p.bad("fortran_order must be True or False");
      a.fortran_order = w == "True";
      have_order = true;
    } else if (key == "shape") {
      p.expect('(');
      while (!p.eat(')')) {
        a.shape.push_back(p.integer());
        if (!p.eat(',')) {
          p.expect(')');
          break;
        }
      }
      have_shape = true;
    } else {
      p.bad("unknown key '" + key + "'");
    }
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape) p.bad("needs descr, fortran_order and shape");
  return a;
}

NpyArray parse_npy(const std::string& bytes, const std::string& path) {
  static_assert(sizeof(double) == 8 && sizeof(float) == 4, "IEEE floats expected");
  {
    const std::uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    if (b != 1) fail("file ", path, ": this reader needs a little-endian machine");
  }
  std::size_t off = 0;
  NpyArray a = parse_npy_header(bytes, path, off);
  const Dtype t = parse_descr(a.descr, path);
  const std::int64_t n = a.size();
  const std::size_t need = std::size_t(n) * t.size;
  if (bytes.size() - off < need)
    fail("file ", path, ": truncated: shape ", [&] {
      std::ostringstream os;
      for (std::size_t k = 0; k < a.shape.size(); ++k) os << (k ? "x" : "") << a.shape[k];
      return os.str();
    }(), " of ", a.descr, " needs ", need, " bytes of data, the file has ", bytes.size() - off);
  const char* data = bytes.data() + off;

  if (t.kind == 'U' || t.kind == 'S') {
    if (a.shape.size() != 1) fail("file ", path, ": string arrays must be 1-D, got ", a.shape.size(), "-D");
    a.is_string = true;
    for (std::int64_t k = 0; k < n; ++k) {
      const char* e = data + std::size_t(k) * t.size;
      std::string s;
      if (t.kind == 'S') {
        s.assign(e, t.size);
        s.erase(s.find_last_not_of('\0') + 1);
      } else {
        for (std::size_t c = 0; c < t.size / 4; ++c) {
          std::uint32_t cp = load<std::uint32_t>(e + 4 * c);
          if (cp == 0) break;
          append_utf8(s, cp);
        }
      }
      a.strings.push_back(s);
    }
    return a;
  }

  a.values.resize(std::size_t(n));
  if (!a.fortran_order || a.shape.size() < 2) {
    for (std::int64_t k = 0; k < n; ++k) a.values[std::size_t(k)] = element(data + std::size_t(k) * t.size, t);
    return a;
  }
  // Fortran order: the first index varies fastest in the file. Convert to C order.
  const std::size_t nd = a.shape.size();
  std::vector<std::int64_t> idx(nd, 0);
  for (std::int64_t k = 0; k < n; ++k) {  // k walks the file (Fortran order); idx is its index tuple
    std::int64_t c = 0;
    for (std::size_t d = 0; d < nd; ++d) c = c * a.shape[d] + idx[d];
    a.values[std::size_t(c)] = element(data + std::size_t(k) * t.size, t);
    for (std::size_t d = 0; d < nd; ++d) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
  return a;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("file ", path, ": cannot be read");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path);
}

}  // namespace cohortnet::ingest
