#!/usr/bin/env python3
"""Independent PyTorch run of the WIMHF SAE (recipe of DESIGN.md §3, as in scripts/sae_torch_bench.py,
threshold EMA started at the first batch's value) on steerlab's cached embeddings of
`steerlab data synth` data: best |r| per planted factor for a few settings. Used to check that
weak recovery comes from the embeddings, not from steerlab's trainer (docs/results/features.md).

Usage: python3 scripts/sae_torch_recovery.py DATA.jsonl TRUTH.json CACHE.safetensors
"""
import json,sys,numpy as np,torch
from safetensors.numpy import load_file
torch.set_num_threads(1)
data, truth, cache = sys.argv[1:4]
rows=[json.loads(l) for l in open(data) if l.strip()]
t=load_file(cache); D=torch.tensor(t['a']-t['b']).float()
facs=sorted(json.load(open(truth))['factors'])
Y={f:np.array([r['factors_a'].get(f,0)-r['factors_b'].get(f,0) for r in rows]) for f in facs}
def train(m=32,k=4,lr=5e-4,epochs=50,batch=256,seed=0,thr_init=True):
    x=torch.cat([D,-D]); n,d=x.shape
    g=torch.Generator().manual_seed(seed)
    w_dec=torch.empty(m,d).uniform_(-(6/(d+m))**.5,(6/(d+m))**.5,generator=g); w_dec/=w_dec.norm(dim=1,keepdim=True)
    w_dec.requires_grad_(True); w_enc=w_dec.detach().t().clone().requires_grad_(True)
    b_enc=torch.zeros(m,requires_grad=True); b_dec=x.median(0).values.clone().requires_grad_(True)
    ps=[w_enc,b_enc,w_dec,b_dec]; opt=torch.optim.Adam(ps,lr=lr); thr=None
    prefixes=[8,m] if m>8 else [m]
    nm=lambda p,t:((p-t)**2).mean()/((t-t.mean(0,keepdim=True))**2).mean()
    for _ in range(epochs):
        perm=torch.randperm(n,generator=g)
        for s in range(0,n,batch):
            xb=x[perm[s:s+batch]]; b=xb.shape[0]
            p=(xb-b_dec)@w_enc+b_enc; flat=p.flatten()
            _,idx=flat.abs().topk(min(k*b,flat.numel())); mask=torch.zeros_like(flat,dtype=torch.bool); mask[idx]=True; mask=mask.view_as(p)
            a=p*mask
            mk=a.abs()[mask].min().item()
            thr = (mk if (thr is None and thr_init) else 0.99*(thr or 0.0)+0.01*mk)
            loss=sum(nm(a[:,:pm]@w_dec[:pm]+b_dec,xb) for pm in prefixes)/len(prefixes)
            opt.zero_grad(); loss.backward()
            with torch.no_grad(): w_dec.grad-=(w_dec.grad*w_dec).sum(1,keepdim=True)*w_dec
            torch.nn.utils.clip_grad_norm_(ps,1.0); opt.step()
            with torch.no_grad(): w_dec/=w_dec.norm(dim=1,keepdim=True)+1e-8
    with torch.no_grad():
        p=(D-b_dec)@w_enc+b_enc; act=(p*(p.abs()>thr)).numpy()
    out={}
    for f in facs:
        best=0
        for j in range(m):
            if act[:,j].std()>0: best=max(best,abs(np.corrcoef(act[:,j],Y[f])[0,1]))
        out[f]=best
    l0=(act!=0).sum(1).mean()
    return out,l0
CONFIGS = [dict(), dict(lr=5e-3, epochs=200), dict(m=16, lr=2e-3, epochs=200), dict(m=128, k=8, lr=2e-3, epochs=200)]
for cfg in CONFIGS:
    o,l0=train(**cfg); print(cfg, f"L0={l0:.1f}", " ".join(f"{f[:6]}={v:.2f}" for f,v in o.items()),flush=True)
