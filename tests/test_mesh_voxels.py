"""mesh.from_voxels against ComfyUI's VoxelToMesh (comfy_extras/nodes_hunyuan3d.py voxel_to_mesh and
voxel_to_mesh_surfnet), written out below as published (the progress bar left out): same vertices in the same order,
same faces."""
import numpy as np
import pytest
import torch

from nodes.mesh.voxels import basic, surface_net


def comfy_voxel_to_mesh(voxels, threshold=0.5, device=None):
    if device is None:
        device = torch.device("cpu")
    voxels = voxels.to(device)
    binary = (voxels > threshold).float()
    padded = torch.nn.functional.pad(binary, (1, 1, 1, 1, 1, 1), 'constant', 0)
    D, H, W = binary.shape
    neighbors = torch.tensor([[0, 0, 1], [0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]], device=device)
    z, y, x = torch.meshgrid(torch.arange(D, device=device), torch.arange(H, device=device),
                             torch.arange(W, device=device), indexing='ij')
    voxel_indices = torch.stack([z.flatten(), y.flatten(), x.flatten()], dim=1)
    solid_mask = binary.flatten() > 0
    solid_indices = voxel_indices[solid_mask]
    corner_offsets = [
        torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 1]], device=device),
        torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], device=device),
        torch.tensor([[0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1]], device=device),
        torch.tensor([[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]], device=device),
        torch.tensor([[1, 0, 1], [1, 1, 1], [1, 1, 0], [1, 0, 0]], device=device),
        torch.tensor([[0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]], device=device)
    ]
    all_vertices = []
    all_indices = []
    vertex_count = 0
    for face_idx, offset in enumerate(neighbors):
        neighbor_indices = solid_indices + offset
        padded_indices = neighbor_indices + 1
        is_exposed = padded[padded_indices[:, 0], padded_indices[:, 1], padded_indices[:, 2]] == 0
        if not is_exposed.any():
            continue
        exposed_indices = solid_indices[is_exposed]
        corners = corner_offsets[face_idx].unsqueeze(0)
        face_vertices = exposed_indices.unsqueeze(1) + corners
        all_vertices.append(face_vertices.reshape(-1, 3))
        num_faces = exposed_indices.shape[0]
        face_indices = torch.arange(vertex_count, vertex_count + 4 * num_faces, device=device).reshape(-1, 4)
        all_indices.append(torch.stack([face_indices[:, 0], face_indices[:, 1], face_indices[:, 2]], dim=1))
        all_indices.append(torch.stack([face_indices[:, 0], face_indices[:, 2], face_indices[:, 3]], dim=1))
        vertex_count += 4 * num_faces
    if len(all_vertices) > 0:
        vertices = torch.cat(all_vertices, dim=0)
        faces = torch.cat(all_indices, dim=0)
    else:
        vertices = torch.zeros((1, 3))
        faces = torch.zeros((1, 3))
    v_min = 0
    v_max = max(voxels.shape)
    vertices = vertices - (v_min + v_max) / 2
    scale = (v_max - v_min) / 2
    if scale > 0:
        vertices = vertices / scale
    vertices = torch.fliplr(vertices)
    return vertices, faces


def comfy_voxel_to_mesh_surfnet(voxels, threshold=0.5, device=None):
    if device is None:
        device = torch.device("cpu")
    voxels = voxels.to(device)
    D, H, W = voxels.shape
    padded = torch.nn.functional.pad(voxels, (1, 1, 1, 1, 1, 1), 'constant', 0)
    z, y, x = torch.meshgrid(torch.arange(D, device=device), torch.arange(H, device=device),
                             torch.arange(W, device=device), indexing='ij')
    cell_positions = torch.stack([z.flatten(), y.flatten(), x.flatten()], dim=1)
    corner_offsets = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0],
                                   [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], device=device)
    pos = cell_positions.unsqueeze(1) + corner_offsets.unsqueeze(0)
    z_idx, y_idx, x_idx = pos.unbind(-1)
    corner_values = padded[z_idx, y_idx, x_idx]
    corner_signs = corner_values > threshold
    has_inside = torch.any(corner_signs, dim=1)
    has_outside = torch.any(~corner_signs, dim=1)
    contains_surface = has_inside & has_outside
    active_cells = cell_positions[contains_surface]
    active_signs = corner_signs[contains_surface]
    active_values = corner_values[contains_surface]
    if active_cells.shape[0] == 0:
        return torch.zeros((0, 3), device=device), torch.zeros((0, 3), dtype=torch.long, device=device)
    edges = torch.tensor([[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 3], [2, 6], [3, 7],
                          [4, 5], [4, 6], [5, 7], [6, 7]], device=device)
    cell_vertices = {}
    for edge_idx, (e1, e2) in enumerate(edges):
        crossing = active_signs[:, e1] != active_signs[:, e2]
        if not crossing.any():
            continue
        cell_indices = torch.nonzero(crossing, as_tuple=True)[0]
        v1 = active_values[cell_indices, e1]
        v2 = active_values[cell_indices, e2]
        t = torch.zeros_like(v1, device=device)
        denom = v2 - v1
        valid = denom != 0
        t[valid] = (threshold - v1[valid]) / denom[valid]
        t[~valid] = 0.5
        p1 = corner_offsets[e1].float()
        p2 = corner_offsets[e2].float()
        intersection = p1.unsqueeze(0) + t.unsqueeze(1) * (p2.unsqueeze(0) - p1.unsqueeze(0))
        for i, point in zip(cell_indices.tolist(), intersection):
            if i not in cell_vertices:
                cell_vertices[i] = []
            cell_vertices[i].append(point)
    vertices = []
    vertex_lookup = {}
    for i, points in cell_vertices.items():
        if points:
            vertex = torch.stack(points).mean(dim=0)
            vertex = vertex + active_cells[i].float()
            vertex_lookup[tuple(active_cells[i].tolist())] = len(vertices)
            vertices.append(vertex)
    if not vertices:
        return torch.zeros((0, 3), device=device), torch.zeros((0, 3), dtype=torch.long, device=device)
    final_vertices = torch.stack(vertices)
    inside_corners_mask = active_signs
    outside_corners_mask = ~active_signs
    inside_counts = inside_corners_mask.sum(dim=1, keepdim=True).float()
    outside_counts = outside_corners_mask.sum(dim=1, keepdim=True).float()
    inside_pos = torch.zeros((active_cells.shape[0], 3), device=device)
    outside_pos = torch.zeros((active_cells.shape[0], 3), device=device)
    for i in range(8):
        mask_inside = inside_corners_mask[:, i].unsqueeze(1)
        mask_outside = outside_corners_mask[:, i].unsqueeze(1)
        inside_pos += corner_offsets[i].float().unsqueeze(0) * mask_inside
        outside_pos += corner_offsets[i].float().unsqueeze(0) * mask_outside
    inside_pos /= inside_counts
    outside_pos /= outside_counts
    gradients = inside_pos - outside_pos
    pos_dirs = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]], device=device)
    cross_products = [torch.linalg.cross(pos_dirs[i].float(), pos_dirs[j].float())
                      for i in range(3) for j in range(i + 1, 3)]
    faces = []
    all_keys = set(vertex_lookup.keys())
    for pair_idx, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        dir_i = pos_dirs[i]
        dir_j = pos_dirs[j]
        cross_product = cross_products[pair_idx]
        ni_positions = active_cells + dir_i
        nj_positions = active_cells + dir_j
        diag_positions = active_cells + dir_i + dir_j
        alignments = torch.matmul(gradients, cross_product)
        valid_quads = []
        quad_indices = []
        for idx, active_cell in enumerate(active_cells):
            cell_key = tuple(active_cell.tolist())
            ni_key = tuple(ni_positions[idx].tolist())
            nj_key = tuple(nj_positions[idx].tolist())
            diag_key = tuple(diag_positions[idx].tolist())
            if cell_key in all_keys and ni_key in all_keys and nj_key in all_keys and diag_key in all_keys:
                v0 = vertex_lookup[cell_key]
                v1 = vertex_lookup[ni_key]
                v2 = vertex_lookup[nj_key]
                v3 = vertex_lookup[diag_key]
                valid_quads.append((v0, v1, v2, v3))
                quad_indices.append(idx)
        for q_idx, (v0, v1, v2, v3) in enumerate(valid_quads):
            cell_idx = quad_indices[q_idx]
            if alignments[cell_idx] > 0:
                faces.append(torch.tensor([v0, v1, v3], device=device, dtype=torch.long))
                faces.append(torch.tensor([v0, v3, v2], device=device, dtype=torch.long))
            else:
                faces.append(torch.tensor([v0, v3, v1], device=device, dtype=torch.long))
                faces.append(torch.tensor([v0, v2, v3], device=device, dtype=torch.long))
    if faces:
        faces = torch.stack(faces)
    else:
        faces = torch.zeros((0, 3), dtype=torch.long, device=device)
    v_min = 0
    v_max = max(D, H, W)
    final_vertices = final_vertices - (v_min + v_max) / 2
    scale = (v_max - v_min) / 2
    if scale > 0:
        final_vertices = final_vertices / scale
    final_vertices = torch.fliplr(final_vertices)
    return final_vertices, faces


def _grids():
    rng = np.random.default_rng(3)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (7, 6, 8)), indexing="ij")
    sphere = (1.0 - np.sqrt(x ** 2 + y ** 2 + z ** 2)).astype(np.float32)       # a signed distance, inside > 0
    noise = rng.uniform(-1, 1, (5, 6, 4)).astype(np.float32)
    box = np.zeros((6, 6, 6), np.float32)
    box[1:4, 2:5, 0:6] = 1.0                                                     # touches the grid's sides
    return [(sphere, 0.3), (noise, 0.2), (noise, -0.4), (box, 0.6), (box, 0.5)]


@pytest.mark.parametrize("which", range(5))
def test_surface_net_is_comfyuis(which):
    grid, threshold = _grids()[which]
    want_v, want_f = comfy_voxel_to_mesh_surfnet(torch.from_numpy(grid), threshold)
    v, f = surface_net(grid, threshold)
    assert len(f) > 0
    np.testing.assert_allclose(v, want_v.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(f, want_f.numpy())


@pytest.mark.parametrize("which", range(5))
def test_basic_is_comfyuis(which):
    grid, threshold = _grids()[which]
    want_v, want_f = comfy_voxel_to_mesh(torch.from_numpy(grid), threshold)
    v, f = basic(grid, threshold)
    assert len(f) > 0
    np.testing.assert_array_equal(v, want_v.numpy())
    np.testing.assert_array_equal(f, want_f.numpy())


def test_empty_grids_give_empty_meshes():
    grid = np.zeros((3, 3, 3), np.float32)
    for make in (basic, surface_net):
        v, f = make(grid, 0.5)
        assert v.shape == (0, 3) and f.shape == (0, 3)


@pytest.mark.parametrize("threshold", [0.4, -0.9])
def test_memory_follows_the_surface_not_every_cell(threshold):
    """VAEDecodeHunyuan3D's grids are up to 513^3 (octree resolution 512; 257^3 by default): meshing must not hold
    per-cell index and corner arrays for the whole grid (all 8 corners of every cell, as ComfyUI gathers them, held
    ~260 bytes a cell: 4.5 GB at the default, 36 GB at 512). Peak memory stays a few times the grid's own, for a thin shell (0.4) and a grid
    filled to its sides (-0.9); the meshes are those ComfyUI's code makes (the tests above)."""
    import tracemalloc
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, 65),) * 3, indexing="ij")
    grid = (1.0 - np.sqrt(x ** 2 + y ** 2 + z ** 2)).astype(np.float32)
    for make in (surface_net, basic):
        tracemalloc.start()
        try:
            make(grid, threshold)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 12 * grid.nbytes, (make.__name__, peak / grid.nbytes)
