"""The task's shape, defined once: 16^3 voxel grids of the ten digits.

The Kaggle file stores a grid as a flat vector of VOXELS values with index x + 16y + 256z, so
`vector.reshape(GRID_SHAPE)` is indexed [z, y, x]; the network reads INPUT_SHAPE (one channel).
"""

EDGE = 16
GRID_SHAPE = (EDGE, EDGE, EDGE)
VOXELS = EDGE**3
INPUT_SHAPE = (*GRID_SHAPE, 1)
CLASSES = 10
