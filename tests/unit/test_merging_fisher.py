"""fisher_diagonal against a per-example, per-class autograd loop."""

import torch

from nbsupport.merging import fisher_diagonal


def test_fisher_diagonal_matches_brute_force():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    model[0].bias.requires_grad_(False)  # frozen: no Fisher
    x = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    got = fisher_diagonal(model, [(x[:4], y[:4]), (x[4:], y[4:])])
    emp = fisher_diagonal(model, [(x, y)], expected=False)
    assert set(got) == {"0.weight", "2.weight", "2.bias"}
    params = [p for p in model.parameters() if p.requires_grad]
    names = ["0.weight", "2.weight", "2.bias"]
    want = {k: torch.zeros_like(p) for k, p in zip(names, params, strict=True)}
    want_emp = {k: torch.zeros_like(p) for k, p in zip(names, params, strict=True)}
    for i in range(7):
        logp = torch.log_softmax(model(x[i:i + 1]), -1)[0]
        for c in range(3):
            g = torch.autograd.grad(logp[c], params, retain_graph=True)
            for k, gi in zip(names, g, strict=True):
                want[k] += logp[c].exp().detach() * gi**2 / 7
                if c == y[i]:
                    want_emp[k] += gi**2 / 7
    for k in names:
        assert torch.allclose(got[k], want[k], atol=1e-12)
        assert torch.allclose(emp[k], want_emp[k], atol=1e-12)
