"""nvidia-smi output samples as the tool prints them (NVIDIA's MIG user guide, public `nvidia-smi -L`
listings); the GPU tests replay them because this machine has no GPU."""

QUERY_H200 = """0, GPU-4f5d3b1e-31b8-9fb4-0ae3-c2c56c1e1d6b, NVIDIA H200, 143771 MiB, Disabled
1, GPU-9e1d6a0c-8d2b-7c3e-5e71-6f3f2a2bd5a0, NVIDIA H200, 143771 MiB, Enabled
"""
QUERY_NO_MIG = "0, GPU-2927d07e-3fe9-7904-9e08-b08b82d9a37d, NVIDIA GeForce RTX 2080 Ti, 11264 MiB, [N/A]\n"

LIST_TWO_GPUS = """GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-9c73eb7b-8d6d-6c0e-dc13-97873e2ede40)
  MIG 1g.10gb     Device  0: (UUID: MIG-a686709d-6dc2-542a-8851-0d2508448c10)
  MIG 1g.10gb     Device  1: (UUID: MIG-53864714-0a66-5df2-9007-9268e30d9a72)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-c92e2d5d-4a69-f1cd-4df0-305f8606705a)
  MIG 1g.10gb     Device  0: (UUID: MIG-d5a46a2e-1d77-575d-99e3-1f96c8555a2e)
"""
LIST_H100_3G = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-950792bf-a01c-3f1a-e122-3473e67f54b2)
  MIG 3g.40gb     Device  0: (UUID: MIG-b3061c09-2a4c-5026-a575-79f86a5bb12c)
"""
LIST_OLD_DRIVER = """GPU 0: A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 1g.5gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0)
"""
LIST_NO_MIG = "GPU 0: NVIDIA H200 (UUID: GPU-4f5d3b1e-31b8-9fb4-0ae3-c2c56c1e1d6b)\n"

LGI = """+-------------------------------------------------------+
| GPU instances:                                        |
| GPU   Name             Profile  Instance   Placement  |
|                          ID       ID       Start:Size |
|=======================================================|
|   0  MIG 1g.10gb         19        7          0:1     |
+-------------------------------------------------------+
|   0  MIG 1g.10gb         19       13          6:1     |
+-------------------------------------------------------+
|   0  MIG 3g.40gb          9        2          4:4     |
+-------------------------------------------------------+
"""
LCI = """+--------------------------------------------------------------------+
| Compute instances:                                                 |
| GPU     GPU       Name             Profile   Instance   Placement  |
|       Instance                       ID        ID       Start:Size |
|         ID                                                         |
|====================================================================|
|   0      7       MIG 1g.10gb          0         0          0:1     |
+--------------------------------------------------------------------+
|   0     10       MIG 1g.10gb          0         0          0:1     |
+--------------------------------------------------------------------+
"""
