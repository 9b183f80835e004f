"""The prototype-guided memory: read (eq. 8–10), update (eq. 11–12),
discriminative loss (eq. 13–17) and the query–prototype distance (eq. 22–23).

Queries are the C-dim vectors of the encoder map at every position, L2
normalised (the paper compares them by cosine only; MNAD normalises them the
same way), so reads, distances and updates all live on the unit sphere.
Memory items are N×C with unit rows, or B×N×C when every camera carries its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def queries(z: torch.Tensor) -> torch.Tensor:
    """B×C×H×W encoder map → B×K×C unit queries (K = H·W)."""
    return F.normalize(z.flatten(2).transpose(1, 2), dim=-1)


def cosine(q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """Eq. 8: d(z_i, m_j) for B×K×C queries and N×C or B×N×C items → B×K×N."""
    m = F.normalize(memory, dim=-1)
    return q @ (m.transpose(-1, -2) if m.dim() == 3 else m.t())


def read(q: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 9–10: ẑ_i = Σ_j softmax_j(d_ij)·m_j over all items. Returns (ẑ B×K×C, d B×K×N)."""
    d = cosine(q, memory)
    w = torch.softmax(d, dim=-1)
    return w @ memory, d


def nearest_distance(q: torch.Tensor, memory: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Eq. 22–23: ‖z_i − m_1st‖₂ for every query (B×K), 1st = argmax_j w_ij = argmax_j d_ij."""
    idx = d.argmax(dim=-1)
    if memory.dim() == 2:
        m1 = memory[idx]
    else:
        m1 = torch.gather(memory, 1, idx.unsqueeze(-1).expand(-1, -1, memory.shape[-1]))
    return (q - m1).norm(dim=-1)


def discriminative_loss(q: torch.Tensor, memory: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Eq. 17: Tr(S_W)/Tr(S_B), per clip (K = H·W queries), averaged over the batch.

    Tr(S_B) = Σ_j n_j/K ‖m_j − m̄‖² (eq. 13–14) and Tr(S_W) = Σ_j n_j/K Σ_{k∈j} ‖z_k − m_j‖²
    (eq. 15–16), with n_j the queries whose nearest item is m_j. Both the
    queries and the items get gradient: S_W pulls queries to their prototype,
    S_B pushes the used prototypes apart.
    """
    b, k, _ = q.shape
    idx = d.argmax(dim=-1)  # B×K
    counts = F.one_hot(idx, memory.shape[0]).sum(1).to(q.dtype)  # B×N
    frac = counts / k
    spread = (memory - memory.mean(0, keepdim=True)).pow(2).sum(-1)  # N
    tr_b = frac @ spread  # B
    dist2 = (q - memory[idx]).pow(2).sum(-1)  # B×K
    tr_w = (torch.gather(frac, 1, idx) * dist2).sum(1)  # B
    return (tr_w / (tr_b + 1e-6)).mean()


@torch.no_grad()
def update(memory: torch.Tensor, q: torch.Tensor, scope: str = "nearest") -> torch.Tensor:
    """Eq. 11–12: m_j ← L2norm(m_j + Σ_i v_ij z_i), v = softmax over the queries of d_ij.

    ``q`` is the batch's queries (B×K×C), pooled: every query of the batch votes.
    ``scope="all"`` sums over every query as eq. 12 is printed. Because a cosine
    lies in [−1, 1], v is then nearly uniform and every item moves to the same
    weighted mean of the queries: the items collapse, Tr(S_B) → 0 and L_dis
    explodes (seen in training). ``scope="nearest"`` (default) sums, for item j,
    only over the queries whose nearest item is j, the assignment of the paper's
    Fig. 5 and of MNAD's update that this module builds on.
    """
    flat = q.reshape(-1, q.shape[-1])
    d = cosine(flat, memory)
    v = torch.softmax(d, dim=0)  # (B·K)×N, normalised over queries
    if scope == "nearest":
        v = v * F.one_hot(d.argmax(dim=1), memory.shape[0]).to(v.dtype)
    elif scope != "all":
        raise ValueError(f"memory update scope must be 'nearest' or 'all', not {scope!r}")
    return F.normalize(memory + v.t() @ flat, dim=-1)
