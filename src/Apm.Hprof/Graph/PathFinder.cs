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

    /// <summary>
    /// The breadth-first tree from all GC roots (in root order) as a parent array: -1 for a root, -2 for objects no
    /// root reaches. <see cref="PathTo"/> then answers any number of <see cref="FromGcRoots"/> questions with the
    /// same paths, for one walk of the graph. Cost: O(N + M) once, 8 bytes per object.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public static int[] TreeFromGcRoots(HeapGraph graph, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var parent = new int[graph.ObjectCount];
        Array.Fill(parent, -2);
        var queue = new int[graph.ObjectCount];
        int head = 0, tail = 0;
        foreach (var r in graph.Roots)
        {
            if (parent[r.Object] != -2) continue;
            parent[r.Object] = -1;
            queue[tail++] = r.Object;
        }

        var (start, targets) = graph.Csr;
        while (head < tail)
        {
            int v = queue[head++];
            if ((head & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            for (int k = start[v]; k < start[v + 1]; k++)
            {
                int w = targets[k];
                if (parent[w] != -2) continue;
                parent[w] = v;
                queue[tail++] = w;
            }
        }

        return parent;
    }

    /// <summary>The path from a GC root to <paramref name="target"/> in a tree from <see cref="TreeFromGcRoots"/>; null when no root reaches it.</summary>
    public static IReadOnlyList<int>? PathTo(int[] tree, int target)
    {
        ArgumentNullException.ThrowIfNull(tree);
        return tree[target] == -2 ? null : Unwind(tree, target);
    }

    /// <summary>Shortest path from any of <paramref name="sources"/> to the first object accepted by <paramref name="isTarget"/>.</summary>
    [MethodImpl(HotLoop.Options)]
    public static IReadOnlyList<int>? Shortest(HeapGraph graph, IEnumerable<int> sources, Func<int, bool> isTarget, bool followReferents = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(isTarget);
        // Every object enters the queue at most once, so a plain array of N ints is the queue.
        var parent = new int[graph.ObjectCount];
        Array.Fill(parent, -2);
        var queue = new int[graph.ObjectCount];
        int head = 0, tail = 0;
        foreach (var s in sources)
        {
            if (parent[s] != -2) continue;
            parent[s] = -1;
            queue[tail++] = s;
        }

        var (start, targets) = graph.Csr;
        while (head < tail)
        {
            int v = queue[head++];
            if ((head & 0xFFFF) == 0) ct.ThrowIfCancellationRequested();
            if (isTarget(v)) return Unwind(parent, v);
            for (int k = start[v]; k < start[v + 1]; k++)
            {
                int w = targets[k];
                if (parent[w] != -2) continue;
                parent[w] = v;
                queue[tail++] = w;
            }

            if (followReferents)
            {
                int r = graph.GetReferent(v);
                if (r >= 0 && parent[r] == -2)
                {
                    parent[r] = v;
                    queue[tail++] = r;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Shortest paths from one source to several targets, one at a time, each the path
    /// <c>Shortest(graph, [source], v => v == target)</c> finds; the two arrays of N ints are allocated once and only
    /// the entries a search touched are reset after it (a fresh pair per path was a megabyte of new pages per path
    /// on the 90 MB dump).
    /// </summary>
    internal sealed class Search(HeapGraph graph, int source)
    {
        private int[]? _parent;
        private int[]? _queue;

        [MethodImpl(HotLoop.Options)]
        public List<int>? Shortest(int target)
        {
            if (_parent == null)
            {
                _parent = new int[graph.ObjectCount];
                Array.Fill(_parent, -2);
                _queue = new int[graph.ObjectCount];
            }

            var parent = _parent;
            var queue = _queue!;
            int head = 0, tail = 0;
            parent[source] = -1;
            queue[tail++] = source;
            var (start, targets) = graph.Csr;
            List<int>? found = null;
            while (head < tail)
            {
                int v = queue[head++];
                if (v == target)
                {
                    found = Unwind(parent, v);
                    break;
                }

                for (int k = start[v]; k < start[v + 1]; k++)
                {
                    int w = targets[k];
                    if (parent[w] != -2) continue;
                    parent[w] = v;
                    queue[tail++] = w;
                }
            }

            for (int i = 0; i < tail; i++) parent[queue[i]] = -2;
            return found;
        }
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
        var names = new List<string>();
        foreach (var r in graph.Roots)
        {
            if (r.Object != obj) continue;
            var name = r.Kind switch
            {
                HprofRootKind.ThreadObject => "thread object",
                HprofRootKind.JavaFrame or HprofRootKind.JniLocal or HprofRootKind.NativeStack or HprofRootKind.ThreadBlock =>
                    RootName(r.Kind) + " of thread " + ThreadName(graph, r.ThreadSerial),
                _ => RootName(r.Kind),
            };
            if (!names.Contains(name)) names.Add(name);
        }

        return names.Count == 0 ? null : string.Join(", ", names);
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
