import torch

from veil.training.state import flatten_optimizer, unflatten_optimizer


def test_optimizer_state_round_trips_through_tensors_and_json():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-6)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer("opt", opt)
    import json

    meta = json.loads(json.dumps(meta))
    fresh = torch.optim.AdamW(model.parameters(), lr=5.0)
    fresh.load_state_dict(unflatten_optimizer("opt", tensors, meta))
    assert fresh.param_groups[0]["lr"] == 1e-3
    for a, b in zip(opt.state.values(), fresh.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
