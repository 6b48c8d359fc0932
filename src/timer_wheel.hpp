// TimerWheel: a hierarchical timing wheel of intrusive timer entries (Varghese and Lauck 1987;
// the layout of tokio's timer driver). Not thread-safe: TimerService guards it with its mutex.
//
// Time is counted in ticks (TimerService::kTick, 250 us) from the service's epoch. Level L has 64
// slots, each covering 64^L ticks, so level 0 resolves single ticks and 7 levels reach 2^42 ticks
// (35 years at 250 us; later deadlines are clamped to that).
//
// Invariants:
//  1. `elapsed_` only grows. Every entry still linked has `tick > elapsed_` when it was linked, and
//     sits at the level of the highest 6-bit digit in which its tick and `elapsed_` differ, in the
//     slot given by its tick's digit at that level. Its higher digits equal `elapsed_`'s, so every
//     occupied slot of level L lies after `elapsed_`'s own slot of level L, within the current
//     block of level L + 1: no slot ever wraps around.
//  2. Hence the earliest occupied slot is the first one found scanning level 0 upwards, and
//     advance() visits slots in deadline order. Visiting a slot of level L > 0 moves `elapsed_` to
//     the slot's start and re-links its entries, which then fall to lower levels (or are due).
//  3. An entry is linked in at most one slot; `linked` says whether it is, and only the wheel's
//     owner (holding the service's lock) reads or writes `prev`, `next`, `level`, `linked`.
// Cost: insert and remove are O(1); advance() is O(1) per entry per level it falls through.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace knhk::concurrency::detail {

struct TimerEntry {
  using FireFn = void (*)(TimerEntry* self) noexcept;

  explicit TimerEntry(FireFn fn) noexcept : fire(fn) {}

  // Called by the timer thread after the entry was unlinked, without the service's lock held.
  const FireFn fire;
  std::uint64_t tick = 0;  // deadline, in ticks; the entry fires once elapsed() >= tick
  TimerEntry* prev = nullptr;
  TimerEntry* next = nullptr;  // also chains the list advance() returns
  std::uint8_t level = 0;
  bool linked = false;
};

class TimerWheel {
 public:
  static constexpr unsigned kSlotBits = 6;
  static constexpr unsigned kSlots = 1U << kSlotBits;
  static constexpr unsigned kLevels = 7;
  static constexpr std::uint64_t kMaxTick = (std::uint64_t{1} << (kSlotBits * kLevels)) - 1;
  static constexpr std::uint64_t kNever = ~std::uint64_t{0};

  [[nodiscard]] std::uint64_t elapsed() const noexcept { return elapsed_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// Links `entry`. Precondition: entry->tick > elapsed() and it is not linked.
  void insert(TimerEntry* entry) noexcept {
    if (entry->tick > kMaxTick) entry->tick = kMaxTick;
    const unsigned level = level_for(entry->tick);
    const unsigned slot = slot_of(entry->tick, level);
    Level& lv = levels_[level];
    entry->level = static_cast<std::uint8_t>(level);
    entry->prev = nullptr;
    entry->next = lv.heads[slot];
    if (entry->next != nullptr) entry->next->prev = entry;
    lv.heads[slot] = entry;
    lv.occupied |= std::uint64_t{1} << slot;
    entry->linked = true;
    ++size_;
  }

  /// Unlinks a linked `entry`.
  void remove(TimerEntry* entry) noexcept {
    Level& lv = levels_[entry->level];
    const unsigned slot = slot_of(entry->tick, entry->level);
    (entry->prev != nullptr ? entry->prev->next : lv.heads[slot]) = entry->next;
    if (entry->next != nullptr) entry->next->prev = entry->prev;
    if (lv.heads[slot] == nullptr) lv.occupied &= ~(std::uint64_t{1} << slot);
    entry->prev = entry->next = nullptr;
    entry->linked = false;
    --size_;
  }

  /// The tick at which the earliest occupied slot is due, or kNever when the wheel is empty.
  [[nodiscard]] std::uint64_t next_expiration() const noexcept {
    const Next next = find_next();
    return next.found ? next.deadline : kNever;
  }

  /// Moves time forward to `now`, unlinking every entry whose tick is <= now. Returns them as a
  /// list chained through `next` (in no particular order).
  TimerEntry* advance(std::uint64_t now) noexcept {
    TimerEntry* due = nullptr;
    for (Next next = find_next(); next.found && next.deadline <= now; next = find_next()) {
      elapsed_ = next.deadline;  // Invariant 2
      Level& lv = levels_[next.level];
      TimerEntry* entry = lv.heads[next.slot];
      lv.heads[next.slot] = nullptr;
      lv.occupied &= ~(std::uint64_t{1} << next.slot);
      while (entry != nullptr) {
        TimerEntry* const following = entry->next;
        entry->linked = false;
        --size_;
        if (entry->tick <= elapsed_) {
          entry->prev = nullptr;
          entry->next = due;
          due = entry;
        } else {
          insert(entry);  // falls to a lower level
        }
        entry = following;
      }
    }
    if (now > elapsed_) elapsed_ = now;
    return due;
  }

 private:
  struct Level {
    std::uint64_t occupied = 0;  // bit s: heads[s] is not empty
    std::array<TimerEntry*, kSlots> heads{};
  };
  struct Next {
    bool found = false;
    unsigned level = 0;
    unsigned slot = 0;
    std::uint64_t deadline = 0;
  };

  [[nodiscard]] unsigned level_for(std::uint64_t tick) const noexcept {
    const std::uint64_t differing = (elapsed_ ^ tick) | (kSlots - 1);
    const auto highest = static_cast<unsigned>(63 - std::countl_zero(differing));
    return highest / kSlotBits;
  }

  static unsigned slot_of(std::uint64_t tick, unsigned level) noexcept {
    return static_cast<unsigned>((tick >> (level * kSlotBits)) & (kSlots - 1));
  }

  [[nodiscard]] Next find_next() const noexcept {
    for (unsigned level = 0; level < kLevels; ++level) {
      const std::uint64_t occupied = levels_[level].occupied;
      if (occupied == 0) continue;
      // Invariant 1: occupied slots lie at or after elapsed_'s slot of this level.
      const unsigned now_slot = slot_of(elapsed_, level);
      const std::uint64_t ahead = occupied & (~std::uint64_t{0} << now_slot);
      if (ahead == 0) continue;
      const auto slot = static_cast<unsigned>(std::countr_zero(ahead));
      const unsigned shift = level * kSlotBits;
      const std::uint64_t block_mask =
          (shift + kSlotBits >= 64) ? ~std::uint64_t{0} : (std::uint64_t{1} << (shift + kSlotBits)) - 1;
      const std::uint64_t block_start = elapsed_ & ~block_mask;
      return {true, level, slot, block_start + (static_cast<std::uint64_t>(slot) << shift)};
    }
    return {};
  }

  std::array<Level, kLevels> levels_{};
  std::uint64_t elapsed_ = 0;
  std::size_t size_ = 0;
};

}  // namespace knhk::concurrency::detail
