"""A one-rank NCCL process group whose averaging all-reduce runs once on the
compute stream (exposed) and once on a side stream beside GEMMs (overlapped)."""
import os, torch, torch.distributed as dist
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda:0"))
dev = torch.device("cuda:0")
a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
grad = torch.randn(32 * 1024 * 1024, device=dev, dtype=torch.float32)
side = torch.cuda.Stream()
for step in range(6):
    torch.cuda.nvtx.range_push(f"step {step}")
    torch.cuda.nvtx.range_push("exposed all-reduce")
    for _ in range(4):
        c = a @ b
    dist.all_reduce(grad, op=dist.ReduceOp.AVG)
    torch.cuda.nvtx.range_pop()
    torch.cuda.nvtx.range_push("overlapped all-reduce")
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        dist.all_reduce(grad, op=dist.ReduceOp.AVG)
    for _ in range(8):
        c = a @ b
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.nvtx.range_pop()
    torch.cuda.nvtx.range_pop()
torch.cuda.synchronize()
dist.destroy_process_group()
