using Apm.Hprof.Graph;

namespace Apm.Hprof.Analysis;

/// <summary>Finding kinds, as they appear in JSON.</summary>
public static class FindingKinds
{
    public const string LeakSuspect = "leak-suspect";
    public const string Finalizers = "finalizers";
    public const string Timers = "timers";
    public const string TimerRetainedFinalizable = "timer-retained-finalizable";
}

/// <summary>
/// One named finding with its evidence. <see cref="Path"/> is empty when no path applies; <see cref="Details"/>
/// holds extra evidence lines (label, value) in display order.
/// </summary>
public sealed record Finding(
    string Kind,
    string Title,
    long RetainedBytes,
    long Count,
    IReadOnlyList<string> Classes,
    IReadOnlyList<PathStep> Path,
    IReadOnlyList<KeyValuePair<string, string>> Details);

/// <summary>A class row: instances, shallow total and retained size (VisualVM's retained-by-class).</summary>
public sealed record ClassRow(string Name, int Count, long ShallowBytes, long RetainedBytes);

/// <summary>Finalizer objects grouped by the class of their referent.</summary>
public sealed record FinalizerRow(string ReferentClass, int Registered, int Queued, int Unreachable, long ReferentRetainedBytes);

/// <summary>A java.util.Timer thread with its queue.</summary>
public sealed record TimerRow(
    string ThreadName,
    string ThreadState,
    int Tasks,
    int Cancelled,
    long EarliestDueMillis,
    long LatestDueMillis,
    long QueueRetainedBytes,
    IReadOnlyList<KeyValuePair<string, int>> TaskClasses);

/// <summary>An object a stack frame holds as a local variable (a Java-frame or JNI-local GC root).</summary>
public sealed record FrameLocal(long ObjectId, string ClassName);

/// <summary>
/// One frame of a thread's stack, top first. <see cref="Line"/> is the source line, or HotSpot's marker: -1 unknown,
/// -2 compiled, -3 native method.
/// </summary>
public sealed record ThreadFrame(string ClassName, string Method, string SourceFile, int Line, IReadOnlyList<FrameLocal> Locals);

/// <summary>
/// A thread as the dump shows it: name and state from its java.lang.Thread object, frames from the STACK TRACE and
/// STACK FRAME records. <see cref="UnattributedLocals"/> holds local roots whose frame number is not in the trace.
/// </summary>
public sealed record ThreadRow(
    int Serial,
    long ObjectId,
    string Name,
    string State,
    IReadOnlyList<ThreadFrame> Frames,
    IReadOnlyList<FrameLocal> UnattributedLocals);

/// <summary>A node of the dominator tree as shown in reports (top-down, biggest first, cut at a depth).</summary>
public sealed record DominatorNode(long ObjectId, string ClassName, long ShallowBytes, long RetainedBytes, IReadOnlyList<DominatorNode> Children);

/// <summary>Heap totals.</summary>
public sealed record HeapSummary(
    string File,
    long FileBytes,
    int IdSize,
    DateTimeOffset DumpedAt,
    int Objects,
    int Classes,
    long References,
    int Roots,
    int ReachableObjects,
    long ReachableBytes);

/// <summary>A named step and how long it took.</summary>
public sealed record StepTiming(string Step, TimeSpan Elapsed);

/// <summary>Everything a report shows: findings first, then the tables.</summary>
public sealed record TriageResult(
    HeapSummary Summary,
    IReadOnlyList<Finding> Findings,
    IReadOnlyList<ClassRow> Classes,
    IReadOnlyList<FinalizerRow> Finalizers,
    string FinalizerThread,
    IReadOnlyList<TimerRow> Timers,
    IReadOnlyList<ThreadRow> Threads,
    IReadOnlyList<DominatorNode> DominatorTree,
    IReadOnlyList<StepTiming> Timings);

/// <summary>
/// What <see cref="HeapAnalyses.ScanTimers"/> found before any retained size is known: per timer thread its queue,
/// the tasks' classes and due times, and the finalizable objects its cancelled tasks hold, with the paths.
/// </summary>
public sealed class TimerScan
{
    internal TimerScan(Graph.HeapGraph graph, IReadOnlyList<ThreadScan> threads)
    {
        Graph = graph;
        Threads = threads;
    }

    internal Graph.HeapGraph Graph { get; }

    internal IReadOnlyList<ThreadScan> Threads { get; }

    internal sealed record RetainedGroup(int TaskClass, int HeldClass, int Tasks, List<int> Objects, IReadOnlyList<Graph.PathStep> PathToSample);

    internal sealed record ThreadScan(
        int Thread,
        string Name,
        string State,
        int Size,
        int Array,
        int Cancelled,
        long Earliest,
        long Latest,
        IReadOnlyList<KeyValuePair<string, int>> TaskClasses,
        IReadOnlyList<Graph.PathStep> PathToQueue,
        IReadOnlyList<RetainedGroup> Retained);
}

/// <summary>What <see cref="HeapAnalyses.ScanFinalizers"/> found before any retained size is known.</summary>
public sealed class FinalizerScan
{
    internal FinalizerScan(Graph.HeapGraph graph, bool hasFinalizerClass, bool[] isQueued, string threadState)
    {
        Graph = graph;
        HasFinalizerClass = hasFinalizerClass;
        IsQueued = isQueued;
        ThreadState = threadState;
    }

    internal Graph.HeapGraph Graph { get; }

    internal bool HasFinalizerClass { get; }

    /// <summary>Per position of <see cref="Graph.HeapGraph.ReferencePairs"/>: a Finalizer in the finalization queue.</summary>
    internal bool[] IsQueued { get; }

    internal string ThreadState { get; }
}
