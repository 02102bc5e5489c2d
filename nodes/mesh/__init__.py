"""3-D: triangle meshes from voxel grids and point maps, written as binary glTF (.glb)."""
