#!/usr/bin/env python3
"""List import cycles between the modules of src/ (crate:: and super:: paths in code, not
comments or test modules), at three depths: top-level modules, their children, grandchildren.
Code built only for tests and fuzzing (`fuzz_checks`, and the `checks` module beside a codec)
is left out like test modules: a check may use anything. Exit 1 when there is one. Run from
the repository root: tools/import-cycles.py"""
import os,re,collections,sys
root='src'
mods={}
for dp,dn,fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        p=os.path.join(dp,f)
        rel=os.path.relpath(p,root)[:-3]
        parts=rel.split('/')
        if parts[-1]=='mod': parts=parts[:-1]
        mods['::'.join(parts)]=p
edges=collections.defaultdict(set); why=collections.defaultdict(list)
for m,p in mods.items():
    lines=open(p).read().split('\n')
    code=[]
    for l in lines:
        if l.strip().startswith('#[cfg(test)]'): break
        if l.strip().startswith('//'): continue
        code.append(l)
    s='\n'.join(code)
    parent=m.split('::')[:-1]
    for dep in re.findall(r'crate::([a-z_]+(?:::[a-z_]+)*)',s): edges[m].add(dep); why[(m,dep)].append(p)
    for dep in re.findall(r'super::([a-z_]+(?:::[a-z_]+)*)',s):
        d='::'.join(parent+dep.split('::')); edges[m].add(d); why[(m,d)].append(p)
def graph(depth):
    g=collections.defaultdict(set); w={}
    for m,ds in edges.items():
        a='::'.join(m.split('::')[:depth])
        for d in ds:
            parts=d.split('::')
            while parts and '::'.join(parts) not in mods: parts=parts[:-1]
            if not parts: continue
            b='::'.join(parts[:depth])
            test_only=a.startswith('fuzz_checks') or m.split('::')[-1]=='checks'
            if a!=b and not test_only and a not in('lib','main'):
                g[a].add(b); w.setdefault((a,b),mods[m])
    return g,w
def scc(g):
    index={};low={};st=[];on=set();out=[];c=[0]
    sys.setrecursionlimit(10000)
    def v(n):
        index[n]=low[n]=c[0];c[0]+=1;st.append(n);on.add(n)
        for x in g.get(n,()):
            if x not in index: v(x);low[n]=min(low[n],low[x])
            elif x in on: low[n]=min(low[n],index[x])
        if low[n]==index[n]:
            comp=[]
            while True:
                x=st.pop();on.discard(x);comp.append(x)
                if x==n:break
            if len(comp)>1: out.append(comp)
    for n in list(g):
        if n not in index: v(n)
    return out
for depth in (1,2,3):
    g,w=graph(depth)
    comps=scc(g)
    print("depth",depth,"SCCs:",comps)
    for comp in comps:
        for a in comp:
            for b in g[a]:
                if b in comp: print("   ",a,"->",b,"(",w[(a,b)],")")
sys.exit(1 if any(scc(graph(d)[0]) for d in (1, 2, 3)) else 0)
