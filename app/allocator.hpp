#pragma once
// How the process asks glibc for memory. A scanned body builds and frees a detector tree of
// several MiB, and a relayed MiB passes through buffers of 64 KiB and more. With glibc's
// defaults that memory goes back to the kernel as soon as it is free (the heap shrinks past
// 128 KiB of free space at its top, and buffers past 128 KiB are mmap'd and unmapped one by
// one), and the next body faults every page in again: 10-12 % of the proxy's CPU on scanned
// uploads and on downloads, 15 % of `bench/detectors` on a body with findings. Freed memory is
// kept for the next body instead, and release_free_memory() hands it back when asked (the
// proxy asks every few seconds, so an idle proxy holds only what its connections use).
// Header-only, so that bench/ measures the detectors as the proxy runs them.

#include <malloc.h>

namespace leakscope::app {

inline void keep_freed_memory() {
  ::mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);  // a fixed value also stops glibc adjusting it
  ::mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

inline void release_free_memory() {
  ::malloc_trim(0);
}

}  // namespace leakscope::app
