using System.Diagnostics;
using Apm.Hprof.Graph;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Analysis;

/// <summary>
/// The top of the stack: open, index, dominators, analyses, in named steps. Progress gets (step, fraction of the
/// step); cancellation is checked inside every pass. Throws <see cref="HprofFormatException"/> for bad files.
/// </summary>
public static class HeapTriage
{
    /// <summary>Names of the steps, in order, for progress displays.</summary>
    public static readonly IReadOnlyList<string> Steps = ["open", "index: metadata", "index: positions", "index: references", "dominators", "analyses: waiting for the scans", "analyses", "analyses: timers", "analyses: finalizers", "analyses: leak suspects", "analyses: tables"];

    /// <summary>Runs a full triage of <paramref name="path"/>. Memory: the index (about 30 bytes per object) plus the dominator arrays.</summary>
    public static TriageResult Run(string path, Action<string, double>? progress = null, CancellationToken ct = default)
    {
        var timings = new List<StepTiming>();
        var sw = Stopwatch.StartNew();
        string current = "open";
        void Report(string step, double fraction)
        {
            if (step != current)
            {
                timings.Add(new StepTiming(current, sw.Elapsed));
                sw.Restart();
                current = step;
            }

            progress?.Invoke(step, fraction);
        }

        progress?.Invoke("open", 0);
        using var graph = HeapGraph.Build(HprofFile.Open(path), Report, ct);
        Report("dominators", 0);
        // What needs the graph but no dominator tree (the timer queues, read task by task from the file, and the
        // breadth-first tree from the GC roots for the leak-suspect paths) runs on a second thread meanwhile.
        var besideTime = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // The tree is built by whichever thread is free first.
        int treeClaimed = 0;
        int[]? rootTree = null;
        var beside = Task.Run(
            () =>
            {
                var timers = HeapAnalyses.ScanTimers(graph, stop.Token);
                var finalizers = HeapAnalyses.ScanFinalizers(graph);
                if (Interlocked.Exchange(ref treeClaimed, 1) == 0) rootTree = PathFinder.TreeFromGcRoots(graph, stop.Token);
                besideTime.Stop();
                return (timers, finalizers);
            },
            stop.Token);
        DominatorTree dom;
        TimerScan timerScan;
        FinalizerScan finalizerScan;
        try
        {
            dom = DominatorTree.Compute(graph, ct);
            if (Interlocked.Exchange(ref treeClaimed, 1) == 0) rootTree = PathFinder.TreeFromGcRoots(graph, ct);
            Report("analyses: waiting for the scans", 0);
            (timerScan, finalizerScan) = beside.GetAwaiter().GetResult();
        }
        finally
        {
            // Never leave the other thread reading the mapping after it is closed.
            if (!beside.IsCompleted)
            {
                stop.Cancel();
                try
                {
                    beside.Wait(CancellationToken.None);
                }
                catch (AggregateException)
                {
                    // The first failure is the one to report.
                }
            }
        }

        Report("analyses", 0);
        var analyses = new HeapAnalyses(graph, dom, rootTree);
        Report("analyses: timers", 0);
        var (timerRows, timerFindings) = analyses.Timers(timerScan);
        Report("analyses: finalizers", 0);
        var (finalizerRows, finalizerThread, finalizerFinding) = analyses.Finalizers(finalizerScan);
        Report("analyses: leak suspects", 0);
        var suspects = analyses.LeakSuspects(ct);
        Report("analyses: tables", 0);
        var findings = new List<Finding>();
        foreach (var f in timerFindings)
        {
            if (f.Kind == FindingKinds.TimerRetainedFinalizable) findings.Add(f);
        }

        if (finalizerFinding != null) findings.Add(finalizerFinding);
        foreach (var f in timerFindings)
        {
            if (f.Kind == FindingKinds.Timers) findings.Add(f);
        }

        findings.AddRange(suspects);
        var summary = new HeapSummary(
            Path.GetFileName(path),
            graph.File.Length,
            graph.File.IdSize,
            DateTimeOffset.FromUnixTimeMilliseconds(graph.File.TimestampMillis),
            graph.ObjectCount,
            graph.Classes.Count,
            graph.ReferenceCount,
            graph.Roots.Count,
            dom.ReachableCount,
            dom.ReachableSize);
        var result = new TriageResult(summary, findings, analyses.ClassTable(50), finalizerRows, finalizerThread, timerRows, analyses.Threads(), analyses.DominatorTop(8, 4), timings);
        Report("done", 1);
        timings.Add(new StepTiming("(beside dominators: timer and finalizer scans, perhaps the tree from the GC roots)", besideTime.Elapsed));
        return result;
    }
}
