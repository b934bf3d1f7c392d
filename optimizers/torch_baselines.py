"""torch.optim baselines, registered under the names the configs use.

The algorithm coincides with the papers' definitions, so the reference implementation is
used directly: heavy ball is SGD with momentum (PyTorch convention m <- beta m + g,
w <- w - lr m), Nesterov is SGD(nesterov=True), AMSGrad is Adam(amsgrad=True), GD is SGD
run on the full batch (``train.batch_size: full``).

L-BFGS is the one exception: ``torch.optim.LBFGS.step`` wants a closure that calls
``backward`` itself, which the trainer's contract does not provide, so it is wrapped in a
thin subclass that follows the project's closure contract (forward-only closure,
``needs_closure = True``) and counts its function evaluations.
"""
import torch

from optimizers import register
from optimizers._base import CLOSURE_CONTRACT

register("sgd", torch.optim.SGD)
register("gd", torch.optim.SGD)
register("heavy_ball", torch.optim.SGD)
register("nesterov", torch.optim.SGD)
register("adam", torch.optim.Adam)
register("adamw", torch.optim.AdamW)
register("amsgrad", torch.optim.Adam)
register("adagrad", torch.optim.Adagrad)


@register("lbfgs")
class LBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` with the project's closure contract.

    ``step(closure)``: ``closure()`` returns the loss without calling backward; the wrapper
    zeroes the gradients and backpropagates on every evaluation L-BFGS requests (up to
    ``max_eval`` per step). ``state['n_forwards']`` / ``state['n_backwards']`` count them and
    ``state['step_size']`` is L-BFGS's last line-search step t. Everything else (update,
    defaults, single param group) is torch's.
    """

    needs_closure = True

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None):
        super().__init__(params, lr=lr, max_iter=max_iter, max_eval=max_eval,
                         tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                         history_size=history_size, line_search_fn=line_search_fn)
        for k in ("n_forwards", "n_backwards", "backtracks"):
            self.state[k] = 0
        self.state["step_size"] = float(lr)

    def step(self, closure=None):
        if closure is None:
            raise RuntimeError(CLOSURE_CONTRACT.format(name="LBFGS"))

        def full():
            self.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = closure()
            loss.backward()
            self.state["n_forwards"] += 1
            self.state["n_backwards"] += 1
            return loss

        loss = super().step(full)
        t = self.state[self._params[0]].get("t")
        if t is not None:
            self.state["step_size"] = float(t)
        return loss
