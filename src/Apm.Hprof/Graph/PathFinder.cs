using System.Runtime.CompilerServices;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Graph;

/// <summary>One hop of a path: the object, its class, and the field (or slot) of the previous object that points to it.</summary>
public sealed record PathStep(long ObjectId, string ClassName, string? Field, string? Root);

/// <summary>
/// Shortest paths by breadth-first search over strong references. Reference.referent edges (weak, soft, phantom,
/// final) are followed only when asked. Cost per query: O(N + M) time and 4 bytes per object.
/// </summary>
public static class PathFinder
{
    /// <summary>Shortest path from any GC root to <paramref name="target"/>; null when no root reaches it.</summary>
    public static IReadOnlyList<int>? FromGcRoots(HeapGraph graph, int target, bool followReferents = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        return Shortest(graph, graph.Roots.Select(r => r.Object), t => t == target, followReferents, ct);
    }

    /// <summary>Shortest path from any of <paramref name="sources"/> to the first object accepted by <paramref name="isTarget"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static IReadOnlyList<int>? Shortest(HeapGraph graph, IEnumerable<int> sources, Func<int, bool> isTarget, bool followReferents = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(isTarget);
        var parent = new int[graph.ObjectCount];
        Array.Fill(parent, -2);
        var queue = new Queue<int>();
        foreach (var s in sources)
        {
            if (parent[s] != -2) continue;
            parent[s] = -1;
            queue.Enqueue(s);
        }

        int visited = 0;
        while (queue.Count > 0)
        {
            int v = queue.Dequeue();
            if ((++visited & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            if (isTarget(v)) return Unwind(parent, v);
            foreach (var w in graph.GetReferences(v))
            {
                if (parent[w] != -2) continue;
                parent[w] = v;
                queue.Enqueue(w);
            }

            if (followReferents)
            {
                int r = graph.GetReferent(v);
                if (r >= 0 && parent[r] == -2)
                {
                    parent[r] = v;
                    queue.Enqueue(r);
                }
            }
        }

        return null;
    }

    private static List<int> Unwind(int[] parent, int v)
    {
        var path = new List<int>();
        for (int x = v; x != -1; x = parent[x]) path.Add(x);
        path.Reverse();
        return path;
    }

    /// <summary>Names each hop: the root kind (and thread) of the first object, then the field leading to each next one.</summary>
    public static IReadOnlyList<PathStep> Describe(HeapGraph graph, IReadOnlyList<int> path)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(path);
        var steps = new List<PathStep>(path.Count);
        for (int i = 0; i < path.Count; i++)
        {
            int v = path[i];
            string? field = null;
            if (i > 0)
            {
                field = graph.DescribeEdge(path[i - 1], v);
                if (field == "?" && graph.GetReferent(path[i - 1]) == v) field = "referent";
            }

            steps.Add(new PathStep(graph.GetId(v), ClassLabel(graph, v), field, i == 0 ? DescribeRoot(graph, v) : null));
        }

        return steps;
    }

    /// <summary>Class name of an object, "class X" for class objects, with a thread's name for thread objects.</summary>
    public static string ClassLabel(HeapGraph graph, int obj)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var described = graph.GetDescribedClass(obj);
        if (described != null) return "class " + described.Name;
        var name = graph.GetClass(obj).Name;
        var threadClass = graph.FindClassByName("java.lang.Thread");
        if (threadClass != null && graph.GetKind(obj) == HeapObjectKind.Instance && graph.IsSubclassOf(graph.GetClass(obj), threadClass))
        {
            var tn = graph.ReadString(graph.ReadObjectField(obj, "name"));
            if (!string.IsNullOrEmpty(tn)) return name + " \"" + tn + "\"";
        }

        return name;
    }

    /// <summary>Why an object is a GC root, e.g. "thread object", "local in thread 'main'", or null when it is not one.</summary>
    public static string? DescribeRoot(HeapGraph graph, int obj)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var kinds = graph.Roots.Where(r => r.Object == obj).ToList();
        if (kinds.Count == 0) return null;
        return string.Join(", ", kinds.Select(r => r.Kind switch
        {
            HprofRootKind.ThreadObject => "thread object",
            HprofRootKind.JavaFrame or HprofRootKind.JniLocal or HprofRootKind.NativeStack or HprofRootKind.ThreadBlock =>
                RootName(r.Kind) + " of thread " + ThreadName(graph, r.ThreadSerial),
            _ => RootName(r.Kind),
        }).Distinct());
    }

    private static string ThreadName(HeapGraph graph, int serial)
    {
        var t = graph.GetThreadObject(serial);
        var n = t >= 0 ? graph.ReadString(graph.ReadObjectField(t, "name")) : null;
        return string.IsNullOrEmpty(n) ? FormattableString.Invariant($"#{serial}") : "\"" + n + "\"";
    }

    /// <summary>Human name of a root kind.</summary>
    public static string RootName(HprofRootKind kind) => kind switch
    {
        HprofRootKind.JniGlobal => "JNI global",
        HprofRootKind.JniLocal => "JNI local",
        HprofRootKind.JavaFrame => "Java local variable",
        HprofRootKind.NativeStack => "native stack",
        HprofRootKind.StickyClass => "system class",
        HprofRootKind.ThreadBlock => "thread block",
        HprofRootKind.MonitorUsed => "busy monitor",
        HprofRootKind.ThreadObject => "thread object",
        HprofRootKind.InternedString => "interned string",
        HprofRootKind.Finalizing => "finalizing",
        HprofRootKind.Debugger => "debugger",
        HprofRootKind.ReferenceCleanup => "reference cleanup",
        HprofRootKind.VmInternal => "VM internal",
        HprofRootKind.JniMonitor => "JNI monitor",
        HprofRootKind.Unreachable => "unreachable",
        _ => "unknown root",
    };
}
