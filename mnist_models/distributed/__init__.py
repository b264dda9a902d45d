"""Data-parallel training through torch.distributed: each rank's training (`training`),
starting ranks on this machine (`launch`), and the ddp command's job (`job`)."""
