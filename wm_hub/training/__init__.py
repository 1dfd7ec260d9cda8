"""Training: the recognition-weighted loss of the paper, IDM/FDM trainers and their configs."""
