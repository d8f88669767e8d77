// torchw2v compiled corpus reader: word counts and word ids of a plain LineSentence file,
// read by byte ranges on several threads.
//
// Lines, sentences and ranges are torchw2v.corpus.CorpusFile's: a line ends at '\n' (or at the
// end of the file) and belongs to the range [start, end) that holds its first byte, so ranges
// that tile a file read every line once. A line's tokens make sentences of at most
// kMaxSentence tokens (gensim's LineSentence cuts lines so); a line without tokens makes none.
// Tokens are Python's `line.decode("utf-8").split()`: the line must
// be well-formed UTF-8 (Python's strict decoder: no overlong forms, surrogates or code points
// above U+10FFFF) and tokens are separated by the 29 characters str.split() treats as
// whitespace (ByteClasses and is_space below; tests/test_corpus_scan.py checks them against
// Python's).
// A line that is not UTF-8 stops its range; the op reports the smallest such line's offset
// and the Python side decodes that line to raise Python's own error.
//
// Ops (torch.ops.torchw2v.*, wrapped by torchw2v/corpus_compiled.py):
//   count_words(path, starts, ends, workers, control)
//     -> (words, counts, first_line, first_position, totals)
//     Distinct words of all ranges in order of first occurrence, as UTF-8 bytes each followed
//     by '\n' (uint8); their int64 counts; where each first occurs: the byte offset of its line
//     and its token index in that line; totals = (sentences, tokens, offset of the first line
//     that is not UTF-8 or -1). Each range is counted on its own, then the ranges are merged in
//     order, so the result does not depend on the number of threads.
//   word_index(words) -> index
//     A hash table (int64) over a vocabulary given as '\n'-terminated UTF-8 words, id = rank.
//   encode_words(path, starts, ends, words, index, workers, control, resume_line, stop_at)
//     -> (ids, offsets, totals)
//     The ranges' tokens as int32 ids (words outside the vocabulary dropped), int64 sentence
//     offsets into ids from 0 (CSR), totals = count_words's and (cut, cut_line). A line that
//     goes on past byte stop_at (if >= 0) is cut at its first sentence end at or past it:
//     cut is the byte there and cut_line the line's first byte (else both -1), and a call with
//     starts[0] = cut and resume_line = cut_line reads on from there before the lines that
//     start in its ranges. So consecutive calls read a line of any length a block at a time.
//     Memory: 4 bytes per kept token and 8 per sentence, plus one block per range.
// Ranges are handed to `workers` threads in order. `control` is an int64 tensor of
// 1 + 3 * workers entries: control[0] != 0 asks the threads to stop (the result is then
// meaningless); each thread t publishes bytes, sentences and tokens read at control[1 + 3t ...].
// The file is memory-mapped; pages already read are released as a range goes, so the
// resident memory does not grow with the file. (A file truncated while it is read ends the
// process with SIGBUS, as with any mapped file.)

#include <ATen/EmptyTensor.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <fcntl.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace {

// ------------------------------------------------------------------ characters

enum ByteClass : uint8_t { kWordByte = 0, kSpaceByte = 1, kNewline = 2, kMultiByte = 3 };

struct ByteClasses {
  uint8_t of[256];
  constexpr ByteClasses() : of() {
    for (int c = 0; c < 256; ++c) of[c] = c < 0x80 ? kWordByte : kMultiByte;
    for (int c : {0x09, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20}) of[c] = kSpaceByte;
    of['\n'] = kNewline;
  }
};
constexpr ByteClasses kClass;

// Non-ASCII code points that str.split() separates on.
inline bool is_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

// Length (2 to 4) of the well-formed UTF-8 sequence at p, its code point in *cp; 0 if none.
inline int decode_utf8(const uint8_t* p, const uint8_t* stop, uint32_t* cp) {
  const uint8_t c = p[0];
  const int64_t room = stop - p;
  auto tail = [](uint8_t b) { return (b & 0xc0) == 0x80; };
  if (c < 0xc2) return 0;  // a continuation byte, or an overlong two-byte form
  if (c < 0xe0) {
    if (room < 2 || !tail(p[1])) return 0;
    *cp = (uint32_t(c & 0x1f) << 6) | (p[1] & 0x3f);
    return 2;
  }
  if (c < 0xf0) {
    if (room < 3 || !tail(p[1]) || !tail(p[2])) return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)) return 0;  // overlong, surrogate
    *cp = (uint32_t(c & 0x0f) << 12) | (uint32_t(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
    return 3;
  }
  if (c < 0xf5) {
    if (room < 4 || !tail(p[1]) || !tail(p[2]) || !tail(p[3])) return 0;
    if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)) return 0;  // overlong, > U+10FFFF
    *cp = (uint32_t(c & 0x07) << 18) | (uint32_t(p[1] & 0x3f) << 12) |
          (uint32_t(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
    return 4;
  }
  return 0;
}

// The first byte at or after p that is not printable ASCII (0x21 to 0x7f), or stop.
inline const uint8_t* skip_printable(const uint8_t* p, const uint8_t* stop) {
#ifdef __AVX2__
  const __m256i limit = _mm256_set1_epi8(0x21);
  for (; p + 32 <= stop; p += 32) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    // signed bytes: below 0x21, or 0x80 and up (negative)
    const uint32_t other = uint32_t(_mm256_movemask_epi8(_mm256_cmpgt_epi8(limit, bytes)));
    if (other != 0) return p + __builtin_ctz(other);
  }
#endif
  while (p < stop && int8_t(*p) >= 0x21) ++p;
  return p;
}

// ------------------------------------------------------------------ words

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the word keys assume little endian");

// Up to 8 bytes of s as an integer, zero-padded; one unaligned load when s + 8 <= safe_end.
inline uint64_t load_bytes(const uint8_t* s, size_t n, const uint8_t* safe_end) {
  if (n == 0) return 0;
  if (s + 8 <= safe_end) {
    uint64_t v;
    std::memcpy(&v, s, 8);
    return n >= 8 ? v : v & ((uint64_t(1) << (8 * n)) - 1);
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(s[i]) << (8 * i);
  return v;
}

// A word to look up: its bytes, the first 16 of them (zero-padded), a 64-bit hash, and
// `check`: min(length, 255) in the low 8 bits, 24 more bits of the hash above.
struct Key {
  const uint8_t* s;
  size_t n;
  uint64_t head, head2, hash;
  uint32_t check;
};

// Bytes up to safe_end may be read past the word (pass s + n when none may).
__attribute__((always_inline)) inline Key make_key(const uint8_t* s, size_t n,
                                                   const uint8_t* safe_end) {
  const uint64_t head = load_bytes(s, std::min<size_t>(n, 8), safe_end);
  const uint64_t head2 = n > 8 ? load_bytes(s + 8, std::min<size_t>(n - 8, 8), safe_end) : 0;
  uint64_t h = ((0x9e3779b97f4a7c15ull * (n + 1)) ^ head) * 0xbf58476d1ce4e5b9ull;
  h ^= (h >> 32) ^ head2;
  for (size_t i = 16; i < n; i += 8) {
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= (h >> 32) ^ load_bytes(s + i, std::min<size_t>(n - i, 8), safe_end);
  }
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return {s, n, head, head2, h, uint32_t(std::min<size_t>(n, 255)) | uint32_t(h >> 40) << 8};
}

// One word of an open-addressing table, 32 bytes: a lookup reads one slot, and the word's
// stored bytes only past the first 16. word = index + 1 (0: empty slot); value = its count.
struct Slot {
  uint64_t head, head2;
  uint32_t word, check;
  int64_t value;
};
static_assert(sizeof(Slot) == 32, "a slot is 4 int64");

// Zeroed memory straight from mmap: freed, it goes back to the system at once (malloc may
// keep it), and from 2 MiB on it sits in transparent huge pages where the kernel offers them
// (random probes into a big table otherwise miss the TLB on nearly every token).
template <class T>
class PageArray {
 public:
  explicit PageArray(size_t n) : n_(n) {
    if (n == 0) return;
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(p != MAP_FAILED, "out of memory for ", bytes(), " bytes");
    if (bytes() >= (size_t(2) << 20)) ::madvise(p, bytes(), MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  PageArray(PageArray&& other) noexcept : n_(other.n_), data_(other.data_) {
    other.data_ = nullptr;
  }
  PageArray& operator=(PageArray&& other) noexcept {
    std::swap(n_, other.n_);
    std::swap(data_, other.data_);
    return *this;
  }
  ~PageArray() {
    if (data_ != nullptr) ::munmap(data_, bytes());
  }

  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + n_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  size_t n_;
  T* data_ = nullptr;
};
using SlotArray = PageArray<Slot>;

// Words stored back to back, each followed by '\n' (word i is arena[starts[i],
// starts[i + 1] - 1)), found through `mask + 1` slots.
struct TableView {
  const Slot* slots;
  uint64_t mask;
  const uint8_t* arena;
  const int64_t* starts;

  void prefetch(const Key& k) const { __builtin_prefetch(slots + (k.hash & mask)); }

  // The word's slot, or the empty slot where it would go.
  const Slot* find(const Key& k) const {
    for (uint64_t i = k.hash & mask;; i = (i + 1) & mask) {
      const Slot* slot = slots + i;
      if (slot->word == 0 || (slot->check == k.check && slot->head == k.head &&
                              slot->head2 == k.head2 && (k.n <= 16 || same_tail(*slot, k))))
        return slot;
    }
  }

  bool same_tail(const Slot& slot, const Key& k) const {
    const int64_t begin = starts[slot.word - 1];
    if (size_t(starts[slot.word] - 1 - begin) != k.n) return false;
    const uint8_t* stored = arena + begin;
    for (size_t i = 16; i < k.n; ++i)
      if (stored[i] != k.s[i]) return false;
    return true;
  }
};

// A growing table of distinct words with their counts and first occurrences.
class WordTable {
 public:
  WordTable() : slots_(1024) {}

  int64_t size() const { return int64_t(first_line_.size()); }
  void prefetch(const Key& k) const { view().prefetch(k); }

  TableView view() const {
    return {slots_.data(), slots_.size() - 1, reinterpret_cast<const uint8_t*>(arena_.data()),
            starts_.data()};
  }

  // Count `times` occurrences of a word first seen (if new) at (line, position).
  void count(const Key& k, int64_t times, int64_t line, int64_t position) {
    Slot* slot = const_cast<Slot*>(view().find(k));
    if (slot->word == 0) slot = add(k, slot, line, position);
    slot->value += times;
  }

  // Append a word; link it into `slot` (the empty one find returned) unless that is null.
  Slot* add(const Key& k, Slot* slot, int64_t line, int64_t position) {
    TORCH_CHECK(size() + 1 < (int64_t(1) << 32), "more than 2**32 - 2 distinct words");
    arena_.append(reinterpret_cast<const char*>(k.s), k.n);
    arena_.push_back('\n');
    starts_.push_back(int64_t(arena_.size()));
    first_line_.push_back(line);
    first_position_.push_back(position);
    if (slot == nullptr) return nullptr;
    *slot = Slot{k.head, k.head2, uint32_t(size()), k.check, 0};
    if (2 * uint64_t(size()) <= slots_.size()) return slot;
    grow();
    return const_cast<Slot*>(view().find(k));
  }

  Key key(int64_t w) const {
    const uint8_t* s = reinterpret_cast<const uint8_t*>(arena_.data()) + starts_[w];
    const size_t n = size_t(starts_[w + 1] - 1 - starts_[w]);
    return make_key(s, n, reinterpret_cast<const uint8_t*>(arena_.data()) + arena_.size());
  }
  // Counts in word order.
  std::vector<int64_t> counts() const {
    std::vector<int64_t> counts(size_t(size()), 0);
    for (const Slot& slot : slots_)
      if (slot.word != 0) counts[slot.word - 1] = slot.value;
    return counts;
  }
  const std::string& arena() const { return arena_; }
  const std::vector<int64_t>& first_lines() const { return first_line_; }
  const std::vector<int64_t>& first_positions() const { return first_position_; }
  const std::vector<int64_t>& starts() const { return starts_; }
  const SlotArray& slots() const { return slots_; }

 private:
  void grow() {
    SlotArray slots(slots_.size() * 2);
    const uint64_t mask = slots.size() - 1;
    for (const Slot& slot : slots_) {
      if (slot.word == 0) continue;
      uint64_t i = key(slot.word - 1).hash & mask;
      while (slots[i].word != 0) i = (i + 1) & mask;
      slots[i] = slot;
    }
    slots_ = std::move(slots);
  }

  std::string arena_;
  std::vector<int64_t> starts_{0};
  SlotArray slots_;
  std::vector<int64_t> first_line_, first_position_;
};

// ------------------------------------------------------------------ the file

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    TORCH_CHECK(fd_ >= 0, "cannot open corpus_file '", path, "': ", std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      TORCH_CHECK(false, "corpus_file '", path, "' is not a regular file");
    }
    size_ = int64_t(st.st_size);
    if (size_ > 0) {
      void* data = ::mmap(nullptr, size_t(size_), PROT_READ, MAP_SHARED, fd_, 0);
      if (data == MAP_FAILED) {
        const int err = errno;
        ::close(fd_);
        TORCH_CHECK(false, "cannot map corpus_file '", path, "': ", std::strerror(err));
      }
      data_ = static_cast<const uint8_t*>(data);
      ::madvise(data, size_t(size_), MADV_SEQUENTIAL);
    }
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_t(size_));
    ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }

  // Drop the pages of [from, to) from this process (they stay in the page cache).
  void release(int64_t from, int64_t to) const {
    const int64_t page = int64_t(::sysconf(_SC_PAGESIZE));
    const int64_t first = (from + page - 1) / page * page, last = to / page * page;
    if (last > first) ::madvise(const_cast<uint8_t*>(data_) + first, size_t(last - first), MADV_DONTNEED);
  }

 private:
  int fd_ = -1;
  int64_t size_ = 0;
  const uint8_t* data_ = nullptr;
};

// What one thread has read so far, published for the Python side's progress bar.
struct Progress {
  int64_t* slots;  // bytes, sentences, tokens
  const int64_t* stop;
  int64_t bytes = 0, sentences = 0, tokens = 0;

  void publish() const {
    __atomic_store_n(&slots[0], bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[1], sentences, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[2], tokens, __ATOMIC_RELAXED);
  }
  bool stopped() const { return __atomic_load_n(stop, __ATOMIC_RELAXED) != 0; }
};

constexpr int64_t kReleaseEvery = int64_t(1) << 22;  // bytes read between page releases

// The most tokens of a sentence: gensim's MAX_WORDS_IN_BATCH, at which its LineSentence cuts.
constexpr int64_t kMaxSentence = 10000;

// The first byte after the '\n' at or after `from` (or the file's size), searched a piece at
// a time, each piece's pages released: a search through a long line holds none of it.
inline int64_t after_line(const MappedFile& file, int64_t from) {
  const uint8_t* base = file.data();
  for (int64_t at = from; at < file.size(); at += kReleaseEvery) {
    const int64_t n = std::min(kReleaseEvery, file.size() - at);
    const void* newline = std::memchr(base + at, '\n', size_t(n));
    const int64_t end = newline ? static_cast<const uint8_t*>(newline) - base + 1 : at + n;
    file.release(at, end);
    if (newline) return end;
  }
  return file.size();
}

// Where read_range stopped inside a line (see encode_words): its byte and the line's first.
struct Cut {
  int64_t at = -1, line = -1;
};

// Read the lines whose first byte lies in [start, end): visitor.token(key, line, position) for
// every token (position: its index in the line), visitor.sentence_end() after every sentence.
// Tokens are handed over in batches, each announced first by visitor.prefetch(key), so that
// their table slots load in parallel. With resume_line >= 0, start lies inside the line that
// begins there, just after a sentence's end: that line is read on first. A line that goes on
// past stop_at >= 0 ends the reading at its first sentence end at or past it (*cut says where).
// Returns -1, or the offset of the first line that is not UTF-8 (reading stops there).
template <class Visitor>
int64_t read_range(const MappedFile& file, int64_t start, int64_t end, Visitor& visitor,
                   Progress& progress, int64_t resume_line = -1, int64_t stop_at = -1,
                   Cut* cut = nullptr) {
  const uint8_t* base = file.data();
  const int64_t size = file.size();
  end = std::min(end, size);
  int64_t pos = 0;
  bool resumed = resume_line >= 0 && start < size;
  if (resumed) {
    pos = start;
  } else if (start > 0) {  // skip the rest of a line begun before start
    if (start - 1 >= size) return -1;
    pos = after_line(file, start - 1);
  }
  const uint8_t* const eof = base + size;
  int64_t released = pos;
  constexpr int kBatch = 16;
  struct Pending {
    Key key;
    int64_t line, position;
  } batch[kBatch];
  int pending = 0;
  auto flush = [&] {
    for (int i = 0; i < pending; ++i) visitor.token(batch[i].key, batch[i].line, batch[i].position);
    pending = 0;
  };
  auto release_read = [&](int64_t to) {  // the pages read so far, every kReleaseEvery bytes
    if (to - released >= kReleaseEvery) {
      file.release(released, to);
      released = to;
    }
  };
  auto end_sentence = [&](int64_t tokens) {
    flush();
    visitor.sentence_end();
    progress.sentences += 1;
    progress.tokens += tokens;
    progress.publish();
  };
  while (pos < end || resumed) {
    const int64_t line = resumed ? resume_line : pos, from = pos;
    resumed = false;
    const uint8_t* p = base + pos;
    int64_t position = 0;
    for (;;) {
      while (p < eof) {  // separators
        const uint8_t c = kClass.of[*p];
        if (c == kSpaceByte) {
          ++p;
        } else if (c == kMultiByte) {
          uint32_t cp;
          const int n = decode_utf8(p, eof, &cp);
          if (n == 0) return line;
          if (!is_space(cp)) break;
          p += n;
        } else {
          break;
        }
      }
      if (p == eof || *p == '\n') break;
      const uint8_t* word = p;
      while ((p = skip_printable(p, eof)) < eof) {
        const uint8_t c = kClass.of[*p];
        if (c == kWordByte) {
          ++p;
        } else if (c == kMultiByte) {
          uint32_t cp;
          const int n = decode_utf8(p, eof, &cp);
          if (n == 0) return line;
          if (is_space(cp)) break;
          p += n;
        } else {
          break;
        }
      }
      batch[pending] = {make_key(word, size_t(p - word), eof), line, position++};
      visitor.prefetch(batch[pending].key);
      if (++pending == kBatch) flush();
      if (position % kMaxSentence == 0) {  // within a long line: stop and release as below
        end_sentence(kMaxSentence);
        if (progress.stopped()) return -1;
        if (cut && stop_at >= 0 && p - base >= stop_at) {
          progress.bytes += p - base - from;
          progress.publish();
          file.release(released, p - base);
          *cut = {p - base, line};
          return -1;
        }
        release_read(p - base);
      }
    }
    pos = p == eof ? size : p - base + 1;
    if (position % kMaxSentence) end_sentence(position % kMaxSentence);
    progress.bytes += pos - from;
    progress.publish();
    if (progress.stopped()) return -1;
    release_read(pos);
  }
  file.release(released, pos);
  return -1;
}

// Run work(thread, item) for items 0..items-1 on `workers` threads, in order of item.
template <class Work>
void run_parallel(int64_t items, int64_t workers, Work work) {
  workers = std::max<int64_t>(1, std::min(workers, items));
  std::atomic<int64_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  auto body = [&](int64_t t) {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < items;) work(t, i);
    } catch (...) {
      errors[size_t(t)] = std::current_exception();
    }
  };
  if (workers == 1) {
    body(0);
  } else {
    std::vector<std::thread> threads;
    threads.reserve(size_t(workers));
    for (int64_t t = 0; t < workers; ++t) threads.emplace_back(body, t);
    for (auto& th : threads) th.join();
  }
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
}

std::vector<Progress> progress_slots(const at::Tensor& control, int64_t workers) {
  TORCH_CHECK(control.scalar_type() == at::kLong && control.is_contiguous() &&
                  control.device().is_cpu() && control.numel() >= 1 + 3 * workers,
              "control must be a contiguous CPU int64 tensor of 1 + 3 * workers entries");
  int64_t* c = control.data_ptr<int64_t>();
  std::vector<Progress> progress;
  for (int64_t t = 0; t < workers; ++t) progress.push_back({c + 1 + 3 * t, c});
  return progress;
}

void check_ranges(c10::ArrayRef<int64_t> starts, c10::ArrayRef<int64_t> ends, int64_t workers) {
  TORCH_CHECK(starts.size() == ends.size(), "starts and ends differ in length");
  TORCH_CHECK(workers >= 1, "workers must be >= 1, got ", workers);
  for (size_t r = 0; r < starts.size(); ++r)
    TORCH_CHECK(0 <= starts[r] && starts[r] <= ends[r] && (r == 0 || ends[r - 1] <= starts[r]),
                "byte ranges must be in file order without overlap, got [", starts[r], ", ",
                ends[r], ")", r ? " after one ending at " + std::to_string(ends[r - 1]) : "");
}

at::Tensor int64_tensor(const std::vector<int64_t>& values) {
  at::Tensor t = at::detail::empty_cpu({int64_t(values.size())}, at::kLong, false, std::nullopt);
  std::copy(values.begin(), values.end(), t.data_ptr<int64_t>());
  return t;
}

// Offset of the first line that is not UTF-8 over all ranges, or -1.
int64_t first_bad_line(const std::vector<int64_t>& bad) {
  int64_t first = -1;
  for (const int64_t b : bad)
    if (b >= 0 && (first < 0 || b < first)) first = b;
  return first;
}

// ------------------------------------------------------------------ count_words

struct Counter {
  WordTable table;
  void prefetch(const Key& k) const { table.prefetch(k); }
  void token(const Key& k, int64_t line, int64_t position) { table.count(k, 1, line, position); }
  void sentence_end() {}
};

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> count_words(
    std::string path, c10::ArrayRef<int64_t> starts, c10::ArrayRef<int64_t> ends,
    int64_t workers, at::Tensor control) {
  check_ranges(starts, ends, workers);
  const MappedFile file(path);
  const int64_t ranges = int64_t(starts.size());
  std::vector<Progress> progress = progress_slots(control, workers);
  std::vector<Counter> counters(static_cast<size_t>(ranges));
  std::vector<int64_t> bad(static_cast<size_t>(ranges), -1);
  run_parallel(ranges, workers, [&](int64_t t, int64_t r) {
    bad[r] = read_range(file, starts[r], ends[r], counters[r], progress[t]);
  });

  WordTable merged = ranges ? std::move(counters[0].table) : WordTable();
  for (int64_t r = 1; r < ranges; ++r) {  // ranges in file order: first occurrences stay first
    const WordTable local = std::move(counters[r].table);
    const std::vector<int64_t> counts = local.counts();
    for (int64_t w = 0; w < local.size(); ++w)
      merged.count(local.key(w), counts[w], local.first_lines()[w], local.first_positions()[w]);
  }
  int64_t sentences = 0, tokens = 0;
  for (const Progress& p : progress) sentences += p.sentences, tokens += p.tokens;

  const std::string& arena = merged.arena();
  at::Tensor words =
      at::detail::empty_cpu({int64_t(arena.size())}, at::kByte, false, std::nullopt);
  if (!arena.empty())  // an empty tensor's data is null, which memcpy may not take
    std::memcpy(words.data_ptr<uint8_t>(), arena.data(), arena.size());
  return {words, int64_tensor(merged.counts()), int64_tensor(merged.first_lines()),
          int64_tensor(merged.first_positions()), int64_tensor({sentences, tokens, first_bad_line(bad)})};
}

// ------------------------------------------------------------------ word_index

// Layout of an index tensor: [W, mask, starts[0..W], slots[0..mask] (4 int64 each)].
at::Tensor word_index(at::Tensor words) {
  TORCH_CHECK(words.scalar_type() == at::kByte && words.dim() == 1 && words.is_contiguous() &&
                  words.device().is_cpu(),
              "words must be a contiguous CPU uint8 tensor");
  const uint8_t* s = words.data_ptr<uint8_t>();
  const int64_t n = words.numel();
  TORCH_CHECK(n == 0 || s[n - 1] == '\n', "every word must end with '\\n'");
  WordTable table;
  for (int64_t begin = 0; begin < n;) {
    const int64_t end =
        static_cast<const uint8_t*>(std::memchr(s + begin, '\n', size_t(n - begin))) - s;
    const Key k = make_key(s + begin, size_t(end - begin), s + n);
    // Empty and repeated words keep their id but are never found: no token is empty, and
    // the first of equal words wins.
    Slot* slot = const_cast<Slot*>(table.view().find(k));
    table.add(k, k.n > 0 && slot->word == 0 ? slot : nullptr, 0, 0);
    begin = end + 1;
  }
  const std::vector<int64_t>& starts = table.starts();
  const SlotArray& slots = table.slots();
  at::Tensor index = at::detail::empty_cpu({int64_t(2 + starts.size() + 4 * slots.size())},
                                           at::kLong, false, std::nullopt);
  int64_t* out = index.data_ptr<int64_t>();
  out[0] = table.size();
  out[1] = int64_t(slots.size() - 1);
  std::copy(starts.begin(), starts.end(), out + 2);
  std::memcpy(out + 2 + starts.size(), slots.data(), slots.size() * sizeof(Slot));
  return index;
}

// An index tensor's table, its slots copied into a SlotArray (huge pages).
struct LoadedIndex {
  SlotArray slots;
  TableView view;
};

LoadedIndex load_index(const at::Tensor& words, const at::Tensor& index) {
  TORCH_CHECK(index.scalar_type() == at::kLong && index.dim() == 1 && index.is_contiguous() &&
                  index.device().is_cpu() && index.numel() >= 3,
              "index must come from word_index");
  const int64_t* i = index.data_ptr<int64_t>();
  const int64_t count = i[0], mask = i[1];
  TORCH_CHECK(count >= 0 && mask > 0 && (mask & (mask + 1)) == 0 &&
                  index.numel() == 2 + count + 1 + 4 * (mask + 1) && words.numel() == i[2 + count],
              "index does not belong to these words (build it with word_index(words))");
  SlotArray slots(size_t(mask) + 1);
  std::memcpy(slots.data(), i + 2 + count + 1, slots.bytes());
  const TableView view{slots.data(), uint64_t(mask), words.data_ptr<uint8_t>(), i + 2};
  return {std::move(slots), view};
}

// ------------------------------------------------------------------ encode_words

// Values appended in blocks that grow to 1M entries: no reallocation copies, and the blocks
// go back to the system one by one as they are copied out, so that copying all values into
// one tensor never holds them twice.
template <class T>
class Sink {
 public:
  void push(T value) {
    if (used_ == (blocks_.empty() ? 0 : blocks_.back().size())) {
      blocks_.emplace_back(blocks_.empty() ? 1024 : std::min<size_t>(2 * used_, 1 << 20));
      used_ = 0;
    }
    blocks_.back()[used_++] = value;
    ++size_;
  }
  int64_t size() const { return size_; }
  // Copy every value plus `shift` to out, freeing the blocks.
  void drain(T* out, T shift) {
    for (size_t b = 0; b < blocks_.size(); ++b) {
      const size_t n = b + 1 < blocks_.size() ? blocks_[b].size() : used_;
      for (size_t i = 0; i < n; ++i) *out++ = blocks_[b][i] + shift;
      blocks_[b] = PageArray<T>(0);
    }
    blocks_.clear();
    used_ = 0;
  }

 private:
  std::vector<PageArray<T>> blocks_;
  size_t used_ = 0;
  int64_t size_ = 0;
};

struct Encoder {
  const TableView* index;
  Sink<int32_t> ids;
  Sink<int64_t> ends;  // per sentence: ids kept so far in this range
  void prefetch(const Key& k) const { index->prefetch(k); }
  void token(const Key& k, int64_t, int64_t) {
    const Slot* slot = index->find(k);
    if (slot->word != 0) ids.push(int32_t(slot->word - 1));
  }
  void sentence_end() { ends.push(ids.size()); }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> encode_words(
    std::string path, c10::ArrayRef<int64_t> starts, c10::ArrayRef<int64_t> ends,
    at::Tensor words, at::Tensor index, int64_t workers, at::Tensor control, int64_t resume_line,
    int64_t stop_at) {
  check_ranges(starts, ends, workers);
  TORCH_CHECK(resume_line < 0 || (!starts.empty() && resume_line <= starts[0]),
              "resume_line must be -1 or at most starts[0], got ", resume_line);
  const LoadedIndex loaded = load_index(words, index);
  const TableView& view = loaded.view;
  const MappedFile file(path);
  const int64_t ranges = int64_t(starts.size());
  std::vector<Progress> progress = progress_slots(control, workers);
  std::vector<Encoder> encoders;
  encoders.reserve(size_t(ranges));
  for (int64_t r = 0; r < ranges; ++r) encoders.push_back(Encoder{&view, {}, {}});
  std::vector<int64_t> bad(static_cast<size_t>(ranges), -1);
  std::vector<Cut> cuts(static_cast<size_t>(ranges));
  run_parallel(ranges, workers, [&](int64_t t, int64_t r) {
    bad[r] = read_range(file, starts[r], ends[r], encoders[r], progress[t],
                        r == 0 ? resume_line : -1, stop_at, &cuts[r]);
  });
  Cut cut;  // at most one line, the one that goes on past stop_at, can be cut
  for (const Cut& c : cuts)
    if (c.at >= 0) cut = c;

  int64_t kept = 0, sentences = 0, tokens = 0;
  for (const Encoder& e : encoders) kept += e.ids.size(), sentences += e.ends.size();
  for (const Progress& p : progress) tokens += p.tokens;
  at::Tensor ids = at::detail::empty_cpu({kept}, at::kInt, false, std::nullopt);
  at::Tensor offsets = at::detail::empty_cpu({sentences + 1}, at::kLong, false, std::nullopt);
  int32_t* id_out = ids.data_ptr<int32_t>();
  int64_t* offset_out = offsets.data_ptr<int64_t>();
  *offset_out++ = 0;
  int64_t before = 0;
  for (Encoder& e : encoders) {
    const int64_t range_ids = e.ids.size(), range_sentences = e.ends.size();
    e.ids.drain(id_out, 0);
    e.ends.drain(offset_out, before);
    id_out += range_ids;
    offset_out += range_sentences;
    before += range_ids;
  }
  return {ids, offsets,
          int64_tensor({sentences, tokens, first_bad_line(bad), cut.at, cut.line})};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(torchw2v, m) {
  m.def(
      "count_words(str path, int[] starts, int[] ends, int workers, Tensor(a!) control) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
      &count_words);
  m.def("word_index(Tensor words) -> Tensor", &word_index);
  m.def(
      "encode_words(str path, int[] starts, int[] ends, Tensor words, Tensor index, "
      "int workers, Tensor(a!) control, int resume_line=-1, int stop_at=-1) "
      "-> (Tensor, Tensor, Tensor)",
      &encode_words);
}
