// CUDA runtime error checks and RAII owners for the adapter's CUDA resources.
//
// Every CUDA call goes through TRT_EQUIV_CUDA_CHECK, which throws an EngineError (exit code 4) naming the
// call, the error and the source line; resources are owned by std::unique_ptr with deleters that release
// them even when a later call throws.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>

#include "trt_equiv/errors.hpp"

namespace trt_equiv::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
    throw EngineError(std::string("CUDA call failed: ") + call + " -> " + cudaGetErrorName(err) + " (" +
                      cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

inline void check(cudaError_t err, const char* call, const char* file, int line) {
    if (err != cudaSuccess) throw_cuda_error(err, call, file, line);
}

#define TRT_EQUIV_CUDA_CHECK(call) ::trt_equiv::cuda::check((call), #call, __FILE__, __LINE__)

// Destructors cannot report failures; a failing release at exit has no consequence the caller could act on.
struct StreamDeleter {
    void operator()(cudaStream_t s) const noexcept { (void)cudaStreamDestroy(s); }
};
struct EventDeleter {
    void operator()(cudaEvent_t e) const noexcept { (void)cudaEventDestroy(e); }
};
struct DeviceDeleter {
    void operator()(void* p) const noexcept { (void)cudaFree(p); }
};
struct PinnedDeleter {
    void operator()(void* p) const noexcept { (void)cudaFreeHost(p); }
};

using StreamPtr = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDeleter>;
using EventPtr = std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, EventDeleter>;
using DevicePtr = std::unique_ptr<void, DeviceDeleter>;
using PinnedPtr = std::unique_ptr<void, PinnedDeleter>;

inline StreamPtr make_stream() {
    cudaStream_t s = nullptr;
    TRT_EQUIV_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return StreamPtr(s);
}

inline EventPtr make_event() {
    cudaEvent_t e = nullptr;
    TRT_EQUIV_CUDA_CHECK(cudaEventCreate(&e));
    return EventPtr(e);
}

inline DevicePtr device_alloc(std::size_t bytes) {
    void* p = nullptr;
    TRT_EQUIV_CUDA_CHECK(cudaMalloc(&p, bytes));
    return DevicePtr(p);
}

/// Page-locked host memory, so the host<->device copies are real asynchronous DMA transfers.
inline PinnedPtr pinned_alloc(std::size_t bytes) {
    void* p = nullptr;
    TRT_EQUIV_CUDA_CHECK(cudaMallocHost(&p, bytes));
    return PinnedPtr(p);
}

}  // namespace trt_equiv::cuda
