using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Apm.Hprof.Graph;

namespace Apm.Hprof.Analysis;

/// <summary>
/// The analyses over a built graph and dominator tree. None hard-codes application class names: they start from
/// JDK classes (java.lang.ref.Finalizer, java.util.TimerThread) and follow the heap.
/// </summary>
public sealed class HeapAnalyses
{
    /// <summary>Share of the reachable heap above which an object or class is a leak suspect.</summary>
    public const double SuspectShare = 0.10;

    /// <summary>Fewest finalizable objects kept by cancelled timer tasks that make a timer-retained-finalizable finding.</summary>
    public const int TimerRetainedThreshold = 10;

    private const int TimerTaskCancelled = 3;

    /// <summary>
    /// Loops that read thousands of scattered objects drop the mapped pages every 4096 objects (each read may touch
    /// its own page), so their resident file pages stay near 4096 pages × 2 instead of growing to the whole dump.
    /// </summary>
    private const int ResidentCheck = 4095;
    private readonly HeapGraph _g;
    private readonly DominatorTree _d;
    private readonly long[] _byClass;
    private bool[]? _finalizable;
    private int[]? _rootTree;

    public HeapAnalyses(HeapGraph graph, DominatorTree dominators)
        : this(graph, dominators, null)
    {
    }

    /// <summary>With the leak suspects' tree from the GC roots (<see cref="PathFinder.TreeFromGcRoots"/>) already built.</summary>
    internal HeapAnalyses(HeapGraph graph, DominatorTree dominators, int[]? rootTree)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(dominators);
        _g = graph;
        _d = dominators;
        _rootTree = rootTree;
        _byClass = dominators.RetainedSizeByClass(graph);
    }

    /// <summary>Retained size per class index (VisualVM's definition).</summary>
    public IReadOnlyList<long> RetainedByClass => _byClass;

    /// <summary>Class table sorted by retained size.</summary>
    public IReadOnlyList<ClassRow> ClassTable(int top)
    {
        var present = new List<int>();
        foreach (var c in _g.Classes)
        {
            if (c.InstanceCount > 0) present.Add(c.Index);
        }

        var rows = new List<ClassRow>();
        foreach (var i in Ranking.Descending(CollectionsMarshal.AsSpan(present), i => _byClass[i], i => _g.Classes[i].ShallowSizeTotal, top))
        {
            var c = _g.Classes[i];
            rows.Add(new ClassRow(c.Name, c.InstanceCount, c.ShallowSizeTotal, _byClass[i]));
        }

        return rows;
    }

    /// <summary>True for objects that are the referent of a java.lang.ref.Finalizer (registered for finalization).</summary>
    public bool IsFinalizable(int obj) => Finalizable()[obj];

    private bool[] Finalizable() => _finalizable ??= FinalizableTable(_g);

    [MethodImpl(HotLoop.Options)]
    private static bool[] FinalizableTable(HeapGraph g)
    {
        var result = new bool[g.ObjectCount];
        var fc = g.FindClassByName("java.lang.ref.Finalizer");
        if (fc == null) return result;
        var (refs, referents) = g.ReferencePairs;
        var r = refs.Span;
        var t = referents.Span;
        for (int i = 0; i < r.Length; i++)
        {
            if (g.GetClassIndex(r[i]) == fc.Index) result[t[i]] = true;
        }

        return result;
    }

    /// <summary>Leak suspects: accumulation points retaining a large share of the heap, and classes that do.</summary>
    [MethodImpl(HotLoop.Options)]
    public IReadOnlyList<Finding> LeakSuspects(CancellationToken ct = default)
    {
        var findings = new List<Finding>();
        long total = Math.Max(1, _d.ReachableSize);
        long threshold = (long)(total * SuspectShare);
        var seen = new HashSet<int>();
        // The top of the dominator tree holds about as many objects as the heap: rank only those above the threshold
        // (the same order as ranking all and stopping at the first below it).
        var candidates = new List<int>();
        foreach (var top in _d.GetChildren(DominatorTree.SuperRoot))
        {
            if (_d.GetRetainedSize(top) >= threshold) candidates.Add(top);
        }

        foreach (var top in Ranking.Descending(CollectionsMarshal.AsSpan(candidates), _d.GetRetainedSize))
        {
            if (findings.Count >= 5) break;
            int v = top;
            while (true)
            {
                var kids = _d.GetChildren(v);
                if (kids.Length == 0) break;
                int best = kids[0];
                foreach (var k in kids)
                {
                    if (_d.GetRetainedSize(k) > _d.GetRetainedSize(best)) best = k;
                }

                if (_d.GetRetainedSize(best) < _d.GetRetainedSize(v) * 0.8) break;
                v = best;
            }

            if (!seen.Add(v)) continue;
            var children = _d.GetChildren(v);
            var accumulated = Accumulated(children);
            var path = PathFinder.PathTo(RootTree(ct), v);
            var label = PathFinder.ClassLabel(_g, v);
            var share = _d.GetRetainedSize(v) * 100.0 / total;
            var details = new List<KeyValuePair<string, string>>
            {
                new("share of reachable heap", share.ToString("F1", CultureInfo.InvariantCulture) + " %"),
                new("object id", "0x" + _g.GetId(v).ToString("X", CultureInfo.InvariantCulture)),
            };
            var classes = new List<string> { _g.GetClass(v).Name };
            foreach (var a in accumulated)
            {
                details.Add(new("accumulates", FormattableString.Invariant($"{a.Count} × {a.Name} retaining {a.Bytes} bytes")));
                classes.Add(a.Name);
            }

            findings.Add(new Finding(
                FindingKinds.LeakSuspect,
                FormattableString.Invariant($"{label} retains {share:F1} % of the heap ({_d.GetRetainedSize(v)} bytes)") +
                    (accumulated.Count > 0 ? FormattableString.Invariant($", mostly {accumulated[0].Count} × {accumulated[0].Name}") : ""),
                _d.GetRetainedSize(v),
                children.Length,
                classes,
                path == null ? [] : PathFinder.Describe(_g, path),
                details));
        }

        foreach (var c in _g.Classes)
        {
            if (c.InstanceCount < 100 || _byClass[c.Index] < total * 0.2) continue;
            var share = _byClass[c.Index] * 100.0 / total;
            int sample = -1;
            for (int i = 0; i < _g.ObjectCount && sample < 0; i++)
            {
                if (_g.GetClassIndex(i) == c.Index && _d.IsReachable(i) && _g.GetKind(i) != HeapObjectKind.Class) sample = i;
            }

            var path = sample >= 0 ? PathFinder.PathTo(RootTree(ct), sample) : null;
            findings.Add(new Finding(
                FindingKinds.LeakSuspect,
                FormattableString.Invariant($"{c.InstanceCount} instances of {c.Name} retain {share:F1} % of the heap ({_byClass[c.Index]} bytes)"),
                _byClass[c.Index],
                c.InstanceCount,
                [c.Name],
                path == null ? [] : PathFinder.Describe(_g, path),
                [new("share of reachable heap", share.ToString("F1", CultureInfo.InvariantCulture) + " %")]));
        }

        return findings;
    }

    /// <summary>What the children of an accumulation point are: the three classes whose instances among them retain the most, in the order LINQ's GroupBy then OrderByDescending would give.</summary>
    private List<AccumulatedClass> Accumulated(ReadOnlySpan<int> children)
    {
        var groupOf = new Dictionary<int, int>();
        var groupClass = new int[children.Length];
        var groupCount = new int[children.Length];
        var groupBytes = new long[children.Length];
        int groups = 0;
        foreach (var k in children)
        {
            int ci = _g.GetClassIndex(k);
            if (!groupOf.TryGetValue(ci, out var gi))
            {
                groupOf[ci] = gi = groups++;
                groupClass[gi] = ci;
            }

            groupCount[gi]++;
            groupBytes[gi] += _d.GetRetainedSize(k);
        }

        var order = new int[groups];
        for (int i = 0; i < groups; i++) order[i] = i;
        var result = new List<AccumulatedClass>();
        foreach (var gi in Ranking.Descending(order, gi => groupBytes[gi], take: 3))
            result.Add(new AccumulatedClass(_g.Classes[groupClass[gi]].Name, groupCount[gi], groupBytes[gi]));
        return result;
    }

    private sealed record AccumulatedClass(string Name, int Count, long Bytes);

    /// <summary>
    /// Finalizer objects by referent class: queued (in java.lang.ref.Finalizer's queue, waiting for the Finalizer
    /// thread), registered (referent still strongly reachable) or unreachable (found by GC, not yet queued).
    /// </summary>
    public (IReadOnlyList<FinalizerRow> Rows, string ThreadState, Finding? Finding) Finalizers() => Finalizers(ScanFinalizers(_g));

    /// <summary>
    /// The part of <see cref="Finalizers()"/> that needs no dominator tree: which Finalizer objects are queued
    /// (the queue walked from its head, and each Finalizer's Reference.queue read from the file) and the Finalizer
    /// thread's state. <see cref="HeapTriage"/> runs it beside the dominator computation.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public static FinalizerScan ScanFinalizers(HeapGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var g = graph;
        var fc = g.FindClassByName("java.lang.ref.Finalizer");
        if (fc == null) return new FinalizerScan(g, false, [], "no java.lang.ref.Finalizer class in the dump");
        var queued = new HashSet<int>();
        var queueObj = StaticObject(g, fc, "queue");
        if (queueObj >= 0)
        {
            int r = g.ReadObjectField(queueObj, "head");
            for (int guard = 0; r >= 0 && guard < g.ObjectCount && queued.Add(r); guard++)
            {
                int next = g.ReadObjectField(r, "next", "java.lang.ref.Reference");
                if (next == r) break;
                r = next;
            }
        }

        var rqc = g.FindClassByName("java.lang.ref.ReferenceQueue");
        int enqueued = rqc != null ? StaticObject(g, rqc, "ENQUEUED") : -1;
        // Reference.queue of a Finalizer, found once (Finalizer declares no field of that name itself).
        HeapField queueField = default;
        bool hasQueue = false;
        foreach (var fld in fc.Layout)
        {
            if (fld.Name != "queue" || g.Classes[fld.DeclaringClass].Name != "java.lang.ref.Reference") continue;
            queueField = fld;
            hasQueue = true;
            break;
        }

        long enqueuedId = enqueued >= 0 && hasQueue ? g.GetId(enqueued) : 0;
        int visited = 0;
        var (refObjects, _) = g.ReferencePairs;
        var isQueued = new bool[refObjects.Length];
        for (int i = 0; i < refObjects.Length; i++)
        {
            int f = refObjects.Span[i];
            if (g.GetClassIndex(f) != fc.Index || g.GetKind(f) != HeapObjectKind.Instance) continue;
            if ((++visited & ResidentCheck) == 0) g.TrimResidentPages();
            isQueued[i] = queued.Contains(f) || (enqueuedId != 0 && g.ReadField(f, queueField) == enqueuedId);
        }

        return new FinalizerScan(g, true, isQueued, DescribeThreads(g, "Finalizer"));
    }

    /// <summary>Finishes <see cref="ScanFinalizers"/> with this tree's reachability and retained sizes.</summary>
    [MethodImpl(HotLoop.Options)]
    public (IReadOnlyList<FinalizerRow> Rows, string ThreadState, Finding? Finding) Finalizers(FinalizerScan scan)
    {
        ArgumentNullException.ThrowIfNull(scan);
        if (!ReferenceEquals(scan.Graph, _g)) throw new ArgumentException("the scan is of another graph", nameof(scan));
        if (!scan.HasFinalizerClass) return ([], scan.ThreadState, null);
        var fc = _g.FindClassByName("java.lang.ref.Finalizer")!;
        // Per referent class index; classes in the order of their first Finalizer.
        int classCount = _g.Classes.Count;
        var reg = new int[classCount];
        var q = new int[classCount];
        var u = new int[classCount];
        var bytes = new long[classCount];
        var seen = new bool[classCount];
        var order = new List<int>();
        var (refObjects, refTargets) = _g.ReferencePairs;
        var isQueuedAt = scan.IsQueued;
        for (int i = 0; i < refObjects.Length; i++)
        {
            int f = refObjects.Span[i];
            if (_g.GetClassIndex(f) != fc.Index || _g.GetKind(f) != HeapObjectKind.Instance) continue;
            int referent = refTargets.Span[i];
            bool isQueued = isQueuedAt[i];
            var key = _g.GetClassIndex(referent);
            if (!seen[key])
            {
                seen[key] = true;
                order.Add(key);
            }

            if (isQueued) q[key]++;
            else if (_d.IsReachable(referent)) reg[key]++;
            else u[key]++;
            bytes[key] += _d.GetRetainedSize(referent);
        }

        var list = new List<FinalizerRow>();
        int registered = 0, inQueue = 0, unreachable = 0;
        long referentBytes = 0;
        foreach (var c in Ranking.Descending(CollectionsMarshal.AsSpan(order), c => reg[c] + q[c] + u[c]))
        {
            list.Add(new FinalizerRow(_g.Classes[c].Name, reg[c], q[c], u[c], bytes[c]));
            registered += reg[c];
            inQueue += q[c];
            unreachable += u[c];
            referentBytes += bytes[c];
        }

        var threadState = scan.ThreadState;
        int count = registered + inQueue + unreachable;
        Finding? finding = null;
        if (count >= 1000 || inQueue >= 100)
        {
            var top = list[0];
            finding = new Finding(
                FindingKinds.Finalizers,
                FormattableString.Invariant($"{count} objects registered for finalization ({registered} still reachable, {inQueue} queued, {unreachable} awaiting the queue); most are {top.ReferentClass} ({top.Registered + top.Queued + top.Unreachable})"),
                referentBytes,
                count,
                FirstNames(list.Count, 5, i => list[i].ReferentClass),
                [],
                [new("Finalizer thread", threadState), new("queued for finalization", inQueue.ToString(CultureInfo.InvariantCulture))]);
        }

        return (list, threadState, finding);
    }

    /// <summary>Timer threads, their queues and what cancelled tasks keep alive (including finalizable objects).</summary>
    public (IReadOnlyList<TimerRow> Rows, IReadOnlyList<Finding> Findings) Timers(CancellationToken ct = default) =>
        Timers(ScanTimers(_g, Finalizable(), ct));

    /// <summary>
    /// The part of <see cref="Timers(CancellationToken)"/> that needs no dominator tree: walks every timer's queue,
    /// reading each task from the file, and finds the paths. <see cref="HeapTriage"/> runs it on a second thread
    /// while the dominators are computed. Cost: one read per queued task, one breadth-first search per finding.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    public static TimerScan ScanTimers(HeapGraph graph, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        return ScanTimers(graph, FinalizableTable(graph), ct);
    }

    [MethodImpl(HotLoop.Options)]
    private static TimerScan ScanTimers(HeapGraph g, bool[] finalizable, CancellationToken ct)
    {
        var threads = new List<TimerScan.ThreadScan>();
        var ttc = g.FindClassByName("java.util.TimerThread");
        if (ttc == null) return new TimerScan(g, threads);
        var isTimerThread = SubclassTable(g, ttc);
        var near = new List<int>();
        for (int t = 0; t < g.ObjectCount; t++)
        {
            if (!isTimerThread[g.GetClassIndex(t)] || g.GetKind(t) != HeapObjectKind.Instance) continue;
            ct.ThrowIfCancellationRequested();
            threads.Add(ScanTimerThread(g, t, finalizable, near));
        }

        return new TimerScan(g, threads);
    }

    /// <summary>
    /// One timer thread of <see cref="ScanTimers(HeapGraph, bool[], CancellationToken)"/>. A method of its own because its
    /// lambdas capture locals: inside the loop over every object, the compiler allocated their closure once per object
    /// (56 bytes each, 6.8 MB of garbage on the 90 MB dump).
    /// </summary>
    private static TimerScan.ThreadScan ScanTimerThread(HeapGraph g, int t, bool[] finalizable, List<int> near)
    {
        var search = new PathFinder.Search(g, t);
        var threadName = g.ReadString(g.ReadObjectField(t, "name")) ?? "?";
        int queue = g.ReadObjectField(t, "queue", "java.util.TimerThread");
        int array = queue >= 0 ? g.ReadObjectField(queue, "queue") : -1;
        int size = queue >= 0 ? (int)g.ReadPrimitiveField(queue, "size") : 0;
        if (array >= 0) size = Math.Clamp(size, 0, Math.Max(0, g.GetArrayLength(array) - 1));
        int cancelled = 0;
        long earliest = long.MaxValue, latest = long.MinValue;
        var taskClassCounts = new Dictionary<int, int>();
        int fieldsOf = -1;
        HeapField nextField = default, stateField = default;
        bool hasNext = false, hasState = false;
        // Groups by (task class, retained class), keyed by both indices in one long; in order of first appearance.
        var groupOf = new Dictionary<long, int>();
        var groupTasks = new List<int>();
        var groupObjects = new List<List<int>>();
        var groupKeys = new List<long>();
        for (int slot = 1; slot <= size; slot++)
        {
            if ((slot & ResidentCheck) == 0) g.TrimResidentPages();
            int task = g.ReadArrayElement(array, slot);
            if (task < 0) continue;
            int taskClass = g.GetClassIndex(task);
            taskClassCounts[taskClass] = taskClassCounts.GetValueOrDefault(taskClass) + 1;
            if (taskClass != fieldsOf)
            {
                // Tasks are of few classes: find the two fields once per class, not by name per task.
                hasNext = g.TryFindField(taskClass, "nextExecutionTime", out nextField);
                hasState = g.TryFindField(taskClass, "state", out stateField);
                fieldsOf = taskClass;
            }

            if (g.GetKind(task) != HeapObjectKind.Instance) continue;
            long due = hasNext ? g.ReadField(task, nextField) : 0;
            earliest = Math.Min(earliest, due);
            latest = Math.Max(latest, due);
            if (!hasState || g.ReadField(task, stateField) != TimerTaskCancelled) continue;
            cancelled++;
            FinalizableNear(g, task, finalizable, near);
            for (int h = 0; h < near.Count; h++)
            {
                int held = near[h];
                if (near.IndexOf(held, 0, h) >= 0) continue;
                long key = ((long)taskClass << 32) | (uint)g.GetClassIndex(held);
                if (!groupOf.TryGetValue(key, out var gi))
                {
                    groupOf[key] = gi = groupKeys.Count;
                    groupKeys.Add(key);
                    groupTasks.Add(0);
                    groupObjects.Add([]);
                }

                groupObjects[gi].Add(held);
                groupTasks[gi]++;
            }
        }

        var taskClassOrder = new List<int>(taskClassCounts.Keys);
        var taskClasses = new List<KeyValuePair<string, int>>();
        foreach (var c in Ranking.Descending(CollectionsMarshal.AsSpan(taskClassOrder), c => taskClassCounts[c]))
            taskClasses.Add(new KeyValuePair<string, int>(g.Classes[c].Name, taskClassCounts[c]));
        var groups = new List<TimerScan.RetainedGroup>();
        var groupOrder = new int[groupKeys.Count];
        for (int i = 0; i < groupOrder.Length; i++) groupOrder[i] = i;
        foreach (var gi in Ranking.Descending(groupOrder, gi => groupObjects[gi].Count))
        {
            var distinct = new List<int>();
            var distinctSet = new HashSet<int>();
            foreach (var o in groupObjects[gi])
            {
                if (distinctSet.Add(o)) distinct.Add(o);
            }

            if (distinct.Count < TimerRetainedThreshold) continue;
            groups.Add(new TimerScan.RetainedGroup((int)(groupKeys[gi] >> 32), (int)groupKeys[gi], groupTasks[gi], distinct, PathTo(g, search, distinct[0])));
        }

        bool finding = cancelled >= 100 || size >= 1000;
        return new TimerScan.ThreadScan(t, threadName, ThreadState(g, t), size, array, cancelled, earliest, latest, taskClasses, finding ? PathTo(g, search, array) : [], groups);
    }

    /// <summary>Finishes <see cref="ScanTimers(HeapGraph, CancellationToken)"/> with this tree's retained sizes.</summary>
    public (IReadOnlyList<TimerRow> Rows, IReadOnlyList<Finding> Findings) Timers(TimerScan scan)
    {
        ArgumentNullException.ThrowIfNull(scan);
        if (!ReferenceEquals(scan.Graph, _g)) throw new ArgumentException("the scan is of another graph", nameof(scan));
        var rows = new List<TimerRow>();
        var findings = new List<Finding>();
        foreach (var ts in scan.Threads)
        {
            int t = ts.Thread;
            string threadName = ts.Name;
            long arrayRetained = ts.Array >= 0 ? _d.GetRetainedSize(ts.Array) : 0;
            rows.Add(new TimerRow(
                threadName,
                ts.State,
                ts.Size,
                ts.Cancelled,
                ts.Earliest == long.MaxValue ? 0 : ts.Earliest,
                ts.Latest == long.MinValue ? 0 : ts.Latest,
                arrayRetained,
                ts.TaskClasses));

            if (ts.Cancelled >= 100 || ts.Size >= 1000)
            {
                findings.Add(new Finding(
                    FindingKinds.Timers,
                    FormattableString.Invariant($"Timer thread \"{threadName}\" holds {ts.Size} tasks, {ts.Cancelled} of them cancelled but still queued; due times span {TimeSpan.FromMilliseconds(Math.Max(0, ts.Latest - ts.Earliest))}"),
                    arrayRetained,
                    ts.Size,
                    FirstNames(ts.TaskClasses.Count, 5, i => ts.TaskClasses[i].Key),
                    ts.PathToQueue,
                    [new("cancelled tasks", ts.Cancelled.ToString(CultureInfo.InvariantCulture)), new("thread state", ts.State)]));
            }

            foreach (var grp in ts.Retained)
            {
                var distinct = grp.Objects;
                long bytes = 0;
                foreach (var o in distinct) bytes += _d.GetRetainedSize(o);
                var taskName = _g.Classes[grp.TaskClass].Name;
                var heldName = _g.Classes[grp.HeldClass].Name;
                findings.Add(new Finding(
                    FindingKinds.TimerRetainedFinalizable,
                    FormattableString.Invariant($"Timer thread \"{threadName}\" keeps {distinct.Count} finalizable {heldName} alive through {grp.Tasks} cancelled {taskName} tasks ({bytes} bytes retained)"),
                    bytes,
                    distinct.Count,
                    [heldName, taskName, _g.GetClass(t).Name],
                    grp.PathToSample,
                    [
                        new("timer thread", threadName),
                        new("task class", taskName),
                        new("retained finalizable class", heldName),
                        new("cancelled tasks", grp.Tasks.ToString(CultureInfo.InvariantCulture)),
                        new("why", "a cancelled TimerTask stays in the timer's queue until its due time, keeping what it references (and their Finalizer registrations) alive"),
                    ]));
            }
        }

        return (rows, findings);
    }

    /// <summary>One breadth-first tree from the GC roots shared by every leak-suspect path (same paths as separate searches).</summary>
    private int[] RootTree(CancellationToken ct) => _rootTree ??= PathFinder.TreeFromGcRoots(_g, ct);

    /// <summary>True per class index for <paramref name="ancestor"/> and its subclasses (one walk per class, not per object).</summary>
    private static bool[] SubclassTable(HeapGraph g, HeapClass ancestor)
    {
        var table = new bool[g.Classes.Count];
        foreach (var c in g.Classes) table[c.Index] = g.IsSubclassOf(c, ancestor);
        return table;
    }

    /// <summary>Finalizable objects within two strong hops of a task (into <paramref name="found"/>, cleared first), not looking past a finalizable object.</summary>
    [MethodImpl(HotLoop.Options)]
    private static void FinalizableNear(HeapGraph g, int task, bool[] finalizable, List<int> found)
    {
        found.Clear();
        foreach (var a in g.GetReferences(task))
        {
            if (finalizable[a])
            {
                found.Add(a);
                continue;
            }

            if (g.GetKind(a) != HeapObjectKind.Instance) continue;
            foreach (var b in g.GetReferences(a))
            {
                if (finalizable[b] && b != task) found.Add(b);
            }
        }
    }

    private static IReadOnlyList<PathStep> PathTo(HeapGraph g, PathFinder.Search search, int target)
    {
        if (target < 0) return [];
        var path = search.Shortest(target);
        return path == null ? [] : PathFinder.Describe(g, path);
    }

    private static int StaticObject(HeapGraph g, HeapClass cls, string name)
    {
        foreach (var s in cls.StaticFields)
        {
            if (s.Name == name && s.Type == Reader.HprofBasicType.Object && s.Value != 0) return g.FindObjectIndexOrNone(s.Value);
        }

        return -1;
    }

    private static string DescribeThreads(HeapGraph g, string name)
    {
        var tc = g.FindClassByName("java.lang.Thread");
        if (tc == null) return "unknown";
        foreach (var serial in g.ThreadSerials)
        {
            var t = g.GetThreadObject(serial);
            if (t < 0 || g.ReadString(g.ReadObjectField(t, "name")) != name) continue;
            var frames = g.GetThreadStack(serial);
            var top = frames.Count > 0 ? FormattableString.Invariant($" at {frames[0].ClassName}.{frames[0].Method}") : "";
            return ThreadState(g, t) + top;
        }

        return "not found";
    }

    /// <summary>
    /// Every thread with a thread-object root: name, state, and its stack (STACK TRACE / STACK FRAME records) with the
    /// objects each frame holds as locals (Java-frame and JNI-local roots, matched by thread serial and frame number).
    /// Ordered by thread serial. Cost: one pass over the roots plus the frames' strings.
    /// </summary>
    public IReadOnlyList<ThreadRow> Threads()
    {
        // Keyed by thread serial (high half) and frame number (low half).
        var locals = new Dictionary<long, List<FrameLocal>>();
        foreach (var r in _g.Roots)
        {
            if (r.Kind is not (Reader.HprofRootKind.JavaFrame or Reader.HprofRootKind.JniLocal)) continue;
            long key = LocalsKey(r.ThreadSerial, r.FrameNumber);
            if (!locals.TryGetValue(key, out var list)) locals[key] = list = [];
            list.Add(new FrameLocal(_g.GetId(r.Object), PathFinder.ClassLabel(_g, r.Object)));
        }

        var rows = new List<ThreadRow>();
        var serials = new List<int>(_g.ThreadSerials);
        serials.Sort();
        foreach (var serial in serials)
        {
            int t = _g.GetThreadObject(serial);
            var stack = _g.GetThreadStack(serial);
            var frames = new List<ThreadFrame>(stack.Count);
            for (int i = 0; i < stack.Count; i++)
            {
                var fr = stack[i];
                frames.Add(new ThreadFrame(fr.ClassName, fr.Method, fr.SourceFile, fr.Line, locals.TryGetValue(LocalsKey(serial, i), out var held) ? held : []));
            }

            // HotSpot numbers frames from 0 at the top; a local whose number has no frame (or -1) is kept, not dropped.
            var unattributed = new List<FrameLocal>();
            foreach (var (key, held) in locals)
            {
                if ((int)(key >> 32) == serial && (uint)(int)key >= (uint)stack.Count) unattributed.AddRange(held);
            }

            var name = _g.ReadString(_g.ReadObjectField(t, "name"));
            if (string.IsNullOrEmpty(name)) name = FormattableString.Invariant($"#{serial}");

            rows.Add(new ThreadRow(serial, _g.GetId(t), name, ThreadState(t), frames, unattributed));
        }

        return rows;
    }

    private static long LocalsKey(int serial, int frame) => ((long)serial << 32) | (uint)frame;

    /// <summary>The first <paramref name="take"/> of <paramref name="count"/> names.</summary>
    private static List<string> FirstNames(int count, int take, Func<int, string> name)
    {
        var names = new List<string>();
        for (int i = 0; i < Math.Min(count, take); i++) names.Add(name(i));
        return names;
    }

    /// <summary>java.lang.Thread.State from the JVMTI bits in Thread.threadStatus (JDK 17; holder.threadStatus later).</summary>
    private string ThreadState(int thread) => ThreadState(_g, thread);

    private static string ThreadState(HeapGraph g, int thread)
    {
        long status = g.ReadPrimitiveField(thread, "threadStatus", -1);
        if (status < 0)
        {
            int holder = g.ReadObjectField(thread, "holder");
            status = holder >= 0 ? g.ReadPrimitiveField(holder, "threadStatus", -1) : -1;
        }

        if (status < 0) return "unknown";
        if ((status & 0x4) != 0) return "RUNNABLE";
        if ((status & 0x400) != 0) return "BLOCKED";
        if ((status & 0x10) != 0) return "WAITING";
        if ((status & 0x20) != 0) return "TIMED_WAITING";
        if ((status & 0x2) != 0) return "TERMINATED";
        return (status & 0x1) == 0 ? "NEW" : "RUNNABLE";
    }

    /// <summary>The dominator tree top-down: biggest <paramref name="width"/> children per node to <paramref name="depth"/> levels.</summary>
    public IReadOnlyList<DominatorNode> DominatorTop(int width, int depth) => Children(DominatorTree.SuperRoot, width, depth);

    private List<DominatorNode> Children(int node, int width, int depth)
    {
        if (depth == 0) return [];
        var nodes = new List<DominatorNode>();
        foreach (var c in Ranking.Descending(_d.GetChildren(node), _d.GetRetainedSize, take: width))
            nodes.Add(new DominatorNode(_g.GetId(c), PathFinder.ClassLabel(_g, c), _g.GetShallowSize(c), _d.GetRetainedSize(c), Children(c, width, depth - 1)));
        return nodes;
    }
}
