using System.Runtime.CompilerServices;

namespace Apm.Hprof.Graph;

/// <summary>
/// Immediate dominators and retained sizes of every object, computed with Semi-NCA (Lengauer-Tarjan's semidominators
/// with iterative path compression, then nearest common ancestors; O(m log n) in theory, faster than Lengauer-Tarjan
/// on real graphs) over a virtual super-root whose successors are the GC roots. All state
/// is int arrays indexed by DFS number: about 40 bytes per reachable object during the computation, 12 after.
/// Objects not reachable from any root have no dominator and retain only themselves.
/// </summary>
public sealed class DominatorTree
{
    /// <summary>Value of <see cref="GetImmediateDominator"/> for objects dominated only by the virtual super-root.</summary>
    public const int SuperRoot = -1;

    /// <summary>Value of <see cref="GetImmediateDominator"/> for objects no root reaches.</summary>
    public const int Unreachable = -2;

    private readonly int[] _idom;
    private readonly long[] _retained;
    private int[]? _childStart;
    private int[]? _children;

    private DominatorTree(int[] idom, long[] retained, long reachableSize, int reachableCount)
    {
        _idom = idom;
        _retained = retained;
        ReachableSize = reachableSize;
        ReachableCount = reachableCount;
    }

    /// <summary>Sum of shallow sizes of objects reachable from the roots (the super-root's retained size).</summary>
    public long ReachableSize { get; }

    public int ReachableCount { get; }

    public int NodeCount => _idom.Length;

    /// <summary>Immediate dominator (dense index), <see cref="SuperRoot"/> or <see cref="Unreachable"/>.</summary>
    public int GetImmediateDominator(int node) => _idom[node];

    /// <summary>Bytes freed if this object were unreachable: its shallow size plus everything it dominates.</summary>
    public long GetRetainedSize(int node) => _retained[node];

    public bool IsReachable(int node) => _idom[node] != Unreachable;

    /// <summary>Computes the tree over the graph's strong references (Reference.referent excluded) from all GC roots.</summary>
    public static DominatorTree Compute(HeapGraph graph, CancellationToken ct = default) => Compute(graph, false, ct);

    /// <summary>
    /// As <see cref="Compute(HeapGraph, CancellationToken)"/>; with <paramref name="finalReferentsAsRoots"/> the
    /// strongly reachable referents of java.lang.ref.FinalReference (Finalizer) objects become extra GC roots (an
    /// object registered for finalization is then retained by nobody). See docs/heap-triage.md.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public static DominatorTree Compute(HeapGraph graph, bool finalReferentsAsRoots, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var (start, targets) = graph.Csr;
        var roots = new List<int>();
        foreach (var r in graph.Roots) roots.Add(r.Object);
        var finalRef = finalReferentsAsRoots ? graph.FindClassByName("java.lang.ref.FinalReference") : null;
        if (finalRef != null)
        {
            // Only referents that are strongly reachable anyway: one kept alive by nothing but its Finalizer (e.g. a
            // statement whose cancelled task the timer thread already purged) stays out of the tree.
            var strong = StronglyReachable(graph.ObjectCount, start, targets, graph.Roots);
            var isFinal = new bool[graph.Classes.Count];
            foreach (var c in graph.Classes) isFinal[c.Index] = graph.IsSubclassOf(c, finalRef);
            for (int v = 0; v < graph.ObjectCount; v++)
            {
                if (!isFinal[graph.GetClassIndex(v)] || graph.GetKind(v) != HeapObjectKind.Instance) continue;
                int r = graph.GetReferent(v);
                if (r >= 0 && strong[r]) roots.Add(r);
            }
        }

        return Compute(graph.ObjectCount, start, targets, Distinct(roots, graph.ObjectCount), null, graph.ShallowSizes, ct);
    }

    /// <summary>Each root once, in the order of its first appearance.</summary>
    private static int[] Distinct(List<int> roots, int nodeCount)
    {
        var seen = new bool[nodeCount];
        var result = new List<int>(roots.Count);
        foreach (var r in roots)
        {
            if (seen[r]) continue;
            seen[r] = true;
            result.Add(r);
        }

        return [.. result];
    }

    /// <summary>
    /// Retained sizes as VisualVM's heap library computes them, for comparing with it (not for triage). VisualVM
    /// decides which objects are in the tree by a walk from the GC roots that skips Reference.referent, but computes
    /// an object's dominator by intersecting the dominator chains of all its referrers, referent fields included,
    /// and a referrer that no GC root reaches ends the intersection with "no dominator". So here: the nodes are the
    /// strongly reachable objects; the edges are the strong ones plus every referent edge between two such
    /// objects; an object referenced (strongly or as a referent) by an object outside the tree is an extra root.
    /// Measured equal to VisualVM for every class on IdleService and CancelTimerLeak dumps (docs/heap-triage.md).
    /// Cost: one more walk of the graph and a second CSR copy.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public static DominatorTree ComputeVisualVmCompatible(HeapGraph graph, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var (start, targets) = graph.Csr;
        int n = graph.ObjectCount;
        var strong = StronglyReachable(n, start, targets, graph.Roots);
        var referent = new int[n];
        var extraRoots = new List<int>();
        int extraEdges = 0;
        for (int v = 0; v < n; v++)
        {
            int r = graph.GetClass(v).IsReference ? graph.GetReferent(v) : -1;
            referent[v] = r >= 0 && strong[r] ? r : -1;
            if (strong[v])
            {
                if (referent[v] >= 0) extraEdges++;
                continue;
            }

            for (int k = start[v]; k < start[v + 1]; k++)
            {
                if (strong[targets[k]]) extraRoots.Add(targets[k]);
            }

            if (referent[v] >= 0) extraRoots.Add(referent[v]);
        }

        var start2 = new int[n + 1];
        var targets2 = new int[targets.Length + extraEdges];
        int fill = 0;
        for (int v = 0; v < n; v++)
        {
            start2[v] = fill;
            if (!strong[v]) continue;
            for (int k = start[v]; k < start[v + 1]; k++) targets2[fill++] = targets[k];
            if (referent[v] >= 0) targets2[fill++] = referent[v];
        }

        start2[n] = fill;
        var roots = graph.Roots.Select(r => r.Object).Concat(extraRoots).Distinct().ToArray();
        return Compute(n, start2, targets2, roots, null, graph.ShallowSizes, ct);
    }

    [MethodImpl(HotLoop.Options)]
    private static bool[] StronglyReachable(int nodeCount, int[] start, int[] targets, IReadOnlyList<HeapRoot> roots)
    {
        var seen = new bool[nodeCount];
        var stack = new int[nodeCount];
        int sp = 0;
        foreach (var r in roots)
        {
            if (seen[r.Object]) continue;
            seen[r.Object] = true;
            stack[sp++] = r.Object;
        }

        while (sp > 0)
        {
            int v = stack[--sp];
            for (int k = start[v]; k < start[v + 1]; k++)
            {
                int w = targets[k];
                if (seen[w]) continue;
                seen[w] = true;
                stack[sp++] = w;
            }
        }

        return seen;
    }

    /// <summary>
    /// Computes the tree of any graph in CSR form: successors of node v are targets[start[v]..start[v+1]).
    /// </summary>
    public static DominatorTree Compute(int nodeCount, int[] start, int[] targets, int[] roots, long[] shallow, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(shallow);
        return Compute(nodeCount, start, targets, roots, shallow, null, ct);
    }

    /// <summary>As the public overload, with shallow sizes as longs or as the graph's ints (no copy of them).</summary>
    [MethodImpl(HotLoop.Options)]
    private static DominatorTree Compute(int nodeCount, int[] start, int[] targets, int[] roots, long[]? shallow, int[]? shallowInts, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(roots);
        int superRoot = nodeCount;
        int total = nodeCount + 1;

        // 1. Iterative DFS from the super-root: dfs numbers, parents.
        var dfn = new int[total];
        Array.Fill(dfn, -1);
        var vertex = new int[total];
        var parent = new int[total];
        var stackNode = new int[total];
        var stackEdge = new int[total];
        int n = 0;
        int sp = 0;
        dfn[superRoot] = n;
        vertex[n] = superRoot;
        parent[n] = -1;
        n++;
        stackNode[sp] = superRoot;
        stackEdge[sp] = 0;
        sp++;
        while (sp > 0)
        {
            int v = stackNode[sp - 1];
            int e = stackEdge[sp - 1];
            int succCount = v == superRoot ? roots.Length : start[v + 1] - start[v];
            if (e >= succCount)
            {
                sp--;
                continue;
            }

            stackEdge[sp - 1] = e + 1;
            int w = v == superRoot ? roots[e] : targets[start[v] + e];
            if (dfn[w] >= 0) continue;
            dfn[w] = n;
            vertex[n] = w;
            parent[n] = dfn[v];
            n++;
            stackNode[sp] = w;
            stackEdge[sp] = 0;
            sp++;
            if ((n & 0xFFFFF) == 0) ct.ThrowIfCancellationRequested();
        }

        // 2. Predecessors in DFS-number space (reachable nodes only). stackNode/stackEdge are reused below.
        var predStart = new int[n + 1];
        for (int x = 0; x < n; x++)
        {
            int v = vertex[x];
            if (v == superRoot)
            {
                foreach (var r in roots) predStart[dfn[r] + 1]++;
                continue;
            }

            for (int k = start[v]; k < start[v + 1]; k++) predStart[dfn[targets[k]] + 1]++;
        }

        for (int x = 0; x < n; x++) predStart[x + 1] += predStart[x];
        var preds = new int[predStart[n]];
        var fill = stackEdge;
        Array.Copy(predStart, fill, n);
        for (int x = 0; x < n; x++)
        {
            int v = vertex[x];
            if (v == superRoot)
            {
                foreach (var r in roots) preds[fill[dfn[r]]++] = x;
                continue;
            }

            for (int k = start[v]; k < start[v + 1]; k++) preds[fill[dfn[targets[k]]]++] = x;
        }

        ct.ThrowIfCancellationRequested();

        // 3. Semi-NCA on DFS numbers: semidominators as in Lengauer-Tarjan (eval with path compression over the
        // processed part of the DFS tree), then each immediate dominator as the nearest common ancestor of the parent
        // and the semidominator, walking up the dominators already found (no buckets, one eval per edge).
        // The DFS stack is free now: it holds the semidominators. Each immediate dominator overwrites its node's parent
        // (the NCA walk reads parents of later nodes and dominators of earlier ones only). Fewer fresh arrays are fewer
        // page faults: about a third of this step's time on a 90 MB dump was the kernel zeroing new pages. The DFS
        // numbers are not needed any more either: they hold the labels.
        var semi = stackNode;
        var label = dfn;
        var ancestor = new int[n];
        var idom = parent;
        var path = stackEdge;
        for (int x = 0; x < n; x++)
        {
            semi[x] = x;
            label[x] = x;
            ancestor[x] = -1;
        }

        for (int w = n - 1; w >= 1; w--)
        {
            if ((w & 0xFFFFF) == 0) ct.ThrowIfCancellationRequested();
            int sw = semi[w];
            for (int k = predStart[w]; k < predStart[w + 1]; k++)
            {
                int v = preds[k];
                int sv = v < w ? v : semi[Eval(v, ancestor, label, semi, path)];
                if (sv < sw) sw = sv;
            }

            semi[w] = sw;
            ancestor[w] = parent[w];
        }

        idom[0] = -1;
        for (int w = 1; w < n; w++)
        {
            int d = idom[w];
            int s = semi[w];
            while (d > s) d = idom[d];
            idom[w] = d;
        }

        // 4. Retained sizes bottom-up (a dominator always has a smaller DFS number), straight in object indices.
        var idomObj = new int[nodeCount];
        var retained = new long[nodeCount];
        Array.Fill(idomObj, Unreachable);
        if (shallowInts != null)
        {
            for (int v = 0; v < nodeCount; v++) retained[v] = shallowInts[v];
        }
        else
        {
            for (int v = 0; v < nodeCount; v++) retained[v] = shallow![v];
        }

        long reachableSize = 0;
        for (int x = n - 1; x >= 1; x--)
        {
            int v = vertex[x];
            int d = idom[x];
            if (d == 0)
            {
                idomObj[v] = SuperRoot;
                reachableSize += retained[v];
            }
            else
            {
                idomObj[v] = vertex[d];
                retained[vertex[d]] += retained[v];
            }
        }

        return new DominatorTree(idomObj, retained, reachableSize, n - 1);
    }

    [MethodImpl(HotLoop.Options)]
    private static int Eval(int v, int[] ancestor, int[] label, int[] semi, int[] path)
    {
        if (ancestor[v] < 0) return v;
        int sp = 0;
        int u = v;
        while (ancestor[ancestor[u]] >= 0)
        {
            path[sp++] = u;
            u = ancestor[u];
        }

        while (sp > 0)
        {
            u = path[--sp];
            int a = ancestor[u];
            if (semi[label[a]] < semi[label[u]]) label[u] = label[a];
            ancestor[u] = ancestor[a];
        }

        return label[v];
    }

    /// <summary>Children of a node in the dominator tree (pass <see cref="SuperRoot"/> for the top level). Built once on first use.</summary>
    public ReadOnlySpan<int> GetChildren(int node)
    {
        EnsureChildren();
        int slot = node == SuperRoot ? _idom.Length : node;
        return _children.AsSpan(_childStart![slot], _childStart[slot + 1] - _childStart[slot]);
    }

    [MethodImpl(HotLoop.Options)]
    private void EnsureChildren()
    {
        if (_children != null) return;
        int nodes = _idom.Length;
        var childStart = new int[nodes + 2];
        foreach (var d in _idom)
        {
            if (d == Unreachable) continue;
            childStart[(d == SuperRoot ? nodes : d) + 1]++;
        }

        for (int i = 0; i <= nodes; i++) childStart[i + 1] += childStart[i];
        int total = childStart[nodes + 1];
        var children = new int[total];
        // Filled from the back, each slot's end moving down to its start (no second array of positions), so that
        // childStart[slot + 1] ends up as the slot's start: shifted down by one afterwards. Children stay ascending.
        for (int v = nodes - 1; v >= 0; v--)
        {
            var d = _idom[v];
            if (d == Unreachable) continue;
            children[--childStart[(d == SuperRoot ? nodes : d) + 1]] = v;
        }

        Array.Copy(childStart, 1, childStart, 0, nodes + 1);
        childStart[nodes + 1] = total;

        _children = children;
        _childStart = childStart;
    }

    /// <summary>
    /// Retained size per class the way VisualVM counts it: the sum over objects of the class that no other object
    /// of the same class dominates. One iterative walk of the dominator tree.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public long[] RetainedSizeByClass(HeapGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        EnsureChildren();
        var result = new long[graph.Classes.Count];
        var active = new int[graph.Classes.Count + 1];
        int sentinel = graph.Classes.Count;
        int nodes = _idom.Length;
        // The stack grows with the tree's depth, which is far below the object count in real heaps.
        var stack = new int[Math.Min(nodes + 1, 4096)];
        var cursor = new int[stack.Length];
        int sp = 0;
        stack[sp] = nodes;
        cursor[sp] = _childStart![nodes];
        sp++;
        while (sp > 0)
        {
            int v = stack[sp - 1];
            int end = _childStart[v + 1];
            if (cursor[sp - 1] >= end)
            {
                sp--;
                if (v != nodes) active[graph.GetKind(v) == HeapObjectKind.Class ? sentinel : graph.GetClassIndex(v)]--;
                continue;
            }

            int c = _children![cursor[sp - 1]++];
            int cls = graph.GetClassIndex(c);
            if (graph.GetKind(c) == HeapObjectKind.Class)
            {
                // Class objects are not instances of a user class; VisualVM keeps them out of every class total.
                cls = sentinel;
            }
            else if (active[cls] == 0)
            {
                result[cls] += _retained[c];
            }

            active[cls]++;
            if (sp == stack.Length)
            {
                Array.Resize(ref stack, (int)Math.Min(nodes + 1L, stack.Length * 2L));
                Array.Resize(ref cursor, stack.Length);
            }

            stack[sp] = c;
            cursor[sp] = _childStart[c];
            sp++;
        }

        return result;
    }
}
