using Apm.Hprof.Graph;

namespace Apm.Hprof.Tests;

public class DominatorOracleTests
{
    [Fact]
    public void Lengauer_Tarjan_matches_a_brute_force_dominator_computation_on_random_graphs()
    {
        var rng = new Random(20261121);
        for (int round = 0; round < 300; round++)
        {
            int n = rng.Next(1, 40);
            int edges = rng.Next(0, n * 3);
            var adj = Enumerable.Range(0, n).Select(_ => new List<int>()).ToArray();
            for (int e = 0; e < edges; e++) adj[rng.Next(n)].Add(rng.Next(n));
            var roots = Enumerable.Range(0, rng.Next(1, 4)).Select(_ => rng.Next(n)).Distinct().ToArray();
            var start = new int[n + 1];
            for (int v = 0; v < n; v++) start[v + 1] = start[v] + adj[v].Count;
            var targets = adj.SelectMany(a => a).ToArray();
            var shallow = Enumerable.Range(0, n).Select(_ => (long)rng.Next(1, 100)).ToArray();

            var tree = DominatorTree.Compute(n, start, targets, roots, shallow);
            var (idom, retained) = BruteForce(n, adj, roots, shallow);
            for (int v = 0; v < n; v++)
            {
                Assert.True(idom[v] == tree.GetImmediateDominator(v), $"round {round} node {v}: expected idom {idom[v]}, got {tree.GetImmediateDominator(v)}");
                Assert.Equal(retained[v], tree.GetRetainedSize(v));
            }
        }
    }

    /// <summary>d dominates v when v becomes unreachable from the roots once d is removed; idom is the closest strict dominator.</summary>
    private static (int[] Idom, long[] Retained) BruteForce(int n, List<int>[] adj, int[] roots, long[] shallow)
    {
        var all = Reach(n, adj, roots, -1);
        var doms = new List<int>[n];
        for (int v = 0; v < n; v++)
        {
            doms[v] = [];
            if (!all[v]) continue;
            for (int d = 0; d < n; d++)
            {
                if (d != v && !Reach(n, adj, roots, d)[v]) doms[v].Add(d);
            }
        }

        var idom = new int[n];
        var retained = new long[n];
        for (int v = 0; v < n; v++)
        {
            if (!all[v])
            {
                idom[v] = DominatorTree.Unreachable;
                retained[v] = shallow[v];
                continue;
            }

            // The immediate dominator is the strict dominator that all other strict dominators dominate.
            idom[v] = doms[v].Count == 0 ? DominatorTree.SuperRoot : doms[v].OrderByDescending(d => doms[d].Count).First();
            long sum = shallow[v];
            for (int u = 0; u < n; u++)
            {
                if (u != v && all[u] && doms[u].Contains(v)) sum += shallow[u];
            }

            retained[v] = sum;
        }

        return (idom, retained);
    }

    private static bool[] Reach(int n, List<int>[] adj, int[] roots, int removed)
    {
        var seen = new bool[n];
        var stack = new Stack<int>(roots.Where(r => r != removed));
        foreach (var r in stack) seen[r] = true;
        while (stack.Count > 0)
        {
            foreach (var w in adj[stack.Pop()])
            {
                if (w == removed || seen[w]) continue;
                seen[w] = true;
                stack.Push(w);
            }
        }

        return seen;
    }
}
