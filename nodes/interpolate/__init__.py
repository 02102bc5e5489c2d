"""Frame interpolation: optical-flow in-betweens and RIFE, sharing one frame scheduler."""
