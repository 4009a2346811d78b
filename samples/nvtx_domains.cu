// Workload of samples/h200_nvtx_domains_threads.sqlite.gz: NVTX ranges in
// named domains, as servers and libraries that create their own domain
// emit them, next to default-domain ranges.
//
// An engine thread runs 4 steps ("step", domain "engine"), each a
// default-domain "forward" range over 3 "layer" ranges (a registered
// string in "engine") of two kernels. Step 2 also creates a domain "late"
// and opens one range in it. Meanwhile the main thread launches kernels on
// its own stream under "background" ranges, and a worker thread wraps its
// kernels in a start/end range "worker" of domain "engine".
//
// nvcc -O2 -std=c++17 nvtx_domains.cu -o nvtx_domains -ldl
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <atomic>
#include <thread>

constexpr int N = 1 << 20;

__global__ void scale(float* x, int n, float a) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}

__global__ void add(float* x, const float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

static nvtxEventAttributes_t ascii(const char* text) {
    nvtxEventAttributes_t a = {};
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = text;
    return a;
}

static void launch_pair(float* x, const float* y, cudaStream_t s) {
    scale<<<N / 256, 256, 0, s>>>(x, N, 1.0001f);
    add<<<N / 256, 256, 0, s>>>(x, y, N);
}

int main() {
    nvtxDomainHandle_t engine = nvtxDomainCreateA("engine");
    nvtxStringHandle_t layer_name = nvtxDomainRegisterStringA(engine, "layer");
    float *x, *y, *bx, *wx;
    cudaMalloc(&x, N * sizeof(float));
    cudaMalloc(&y, N * sizeof(float));
    cudaMalloc(&bx, N * sizeof(float));
    cudaMalloc(&wx, N * sizeof(float));
    cudaMemset(x, 0, N * sizeof(float));
    cudaMemset(y, 0, N * sizeof(float));
    cudaMemset(bx, 0, N * sizeof(float));
    cudaMemset(wx, 0, N * sizeof(float));
    cudaDeviceSynchronize();

    std::atomic<bool> done{false};
    std::thread steps([&] {
        cudaStream_t s;
        cudaStreamCreate(&s);
        for (int step = 0; step < 4; ++step) {
            nvtxEventAttributes_t a = ascii("step");
            nvtxDomainRangePushEx(engine, &a);
            nvtxRangePushA("forward");
            for (int l = 0; l < 3; ++l) {
                nvtxEventAttributes_t la = {};
                la.version = NVTX_VERSION;
                la.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
                la.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
                la.message.registered = layer_name;
                nvtxDomainRangePushEx(engine, &la);
                launch_pair(x, y, s);
                nvtxDomainRangePop(engine);
            }
            nvtxRangePop();
            if (step == 2) {
                nvtxDomainHandle_t late = nvtxDomainCreateA("late");
                nvtxEventAttributes_t b = ascii("late_range");
                nvtxDomainRangePushEx(late, &b);
                launch_pair(x, y, s);
                nvtxDomainRangePop(late);
            }
            cudaStreamSynchronize(s);
            nvtxDomainRangePop(engine);
        }
        cudaStreamDestroy(s);
        done = true;
    });
    std::thread worker([&] {
        cudaStream_t s;
        cudaStreamCreate(&s);
        nvtxEventAttributes_t a = ascii("worker");
        nvtxRangeId_t id = nvtxDomainRangeStartEx(engine, &a);
        for (int i = 0; i < 6; ++i) launch_pair(wx, y, s);
        cudaStreamSynchronize(s);
        nvtxDomainRangeEnd(engine, id);
        cudaStreamDestroy(s);
    });
    cudaStream_t s;
    cudaStreamCreate(&s);
    while (!done) {
        nvtxRangePushA("background");
        launch_pair(bx, y, s);
        cudaStreamSynchronize(s);
        nvtxRangePop();
    }
    steps.join();
    worker.join();
    cudaDeviceSynchronize();
    return 0;
}
