using System.Text;
using System.Text.RegularExpressions;
using Apm.Jvm.Attach;

namespace Apm.Collector;

/// <summary>
/// Chooses the class-histogram rows worth sending. A histogram has thousands of rows; the leak patterns need
/// only a few, and those are usually small: <c>java.lang.ref.Finalizer</c> (objects registered for
/// finalization); classes seen in the JVM's finalization queue (they override finalize()); classes whose
/// instance count rose in step with Finalizer's since the JVM's previous histogram (finalizable objects that
/// stay reachable, such as timer-retained statements, never enter the queue); classes nested in finalizable
/// ones; <c>java.util.TimerTask</c> subclasses the JVM reports (<c>VM.class_hierarchy</c>) or, when it cannot,
/// that look like one by name; classes matching the watch patterns; and the top N by bytes and by instances.
/// At most <see cref="MaxRows"/> rows are kept, the leak-pattern reasons first, so that one histogram message
/// stays far below a Kafka message's default 1 MB limit.
/// </summary>
public sealed class HistogramSelection
{
    /// <summary>The JVM's class whose instance count is the number of objects registered for finalization.</summary>
    public const string FinalizerClass = "java.lang.ref.Finalizer";

    /// <summary>
    /// Most rows per histogram message: a row is a class name (rarely over 200 bytes) plus three numbers, module and
    /// reasons, so 1,000 rows stay under about 300 KB.
    /// </summary>
    public const int MaxRows = 1_000;

    // Reasons by priority: when more than MaxRows rows qualify, the rows whose best reason comes first are kept.
    private static readonly string[] ReasonOrder =
        ["finalizer", "finalizer-queue", "finalizer-step", "timer-task", "nested-in-finalizable", "top-bytes", "top-instances", "watch"];

    private static readonly TimeSpan RegexBudget = TimeSpan.FromMilliseconds(100);
    private readonly List<Regex> _watch;
    private readonly int _topN;

    /// <summary>
    /// Compiles the watch patterns once; throws <see cref="ArgumentException"/> naming a pattern that is not a
    /// valid glob or regular expression, or a negative <paramref name="topN"/>.
    /// </summary>
    public HistogramSelection(IEnumerable<string> watchPatterns, int topN)
    {
        ArgumentNullException.ThrowIfNull(watchPatterns);
        ArgumentOutOfRangeException.ThrowIfNegative(topN);
        _topN = topN;
        _watch = [];
        foreach (var p in watchPatterns)
        {
            if (string.IsNullOrWhiteSpace(p)) continue;
            var source = p.StartsWith("re:", StringComparison.Ordinal) ? p[3..] : GlobToRegex(p.Trim());
            try
            {
                // A time budget per match: a pathological pattern costs a skipped row, never a stuck collector.
                _watch.Add(new Regex("^(?:" + source + ")$", RegexOptions.CultureInvariant, RegexBudget));
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"HistogramWatchPatterns: '{p}' is not a valid pattern: {ex.Message}", nameof(watchPatterns), ex);
            }
        }
    }

    /// <summary>As <see cref="Select(ClassHistogram, HistogramHints)"/> with only the finalization-queue classes known.</summary>
    public IReadOnlyList<(ClassHistogramRow Row, string Reasons)> Select(ClassHistogram histogram, IReadOnlySet<string> finalizableClasses) =>
        Select(histogram, new HistogramHints(finalizableClasses, null, HistogramHints.NoClasses));

    /// <summary>The kept rows with why each was kept (comma-separated reasons), in the histogram's order.</summary>
    public IReadOnlyList<(ClassHistogramRow Row, string Reasons)> Select(ClassHistogram histogram, HistogramHints hints)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        ArgumentNullException.ThrowIfNull(hints);
        var topBytes = new HashSet<ClassHistogramRow>(histogram.Rows.OrderByDescending(r => r.Bytes).ThenBy(r => r.Rank).Take(_topN), ReferenceEqualityComparer.Instance);
        var topInstances = new HashSet<ClassHistogramRow>(histogram.Rows.OrderByDescending(r => r.Instances).ThenBy(r => r.Rank).Take(_topN), ReferenceEqualityComparer.Instance);
        var kept = new List<(ClassHistogramRow Row, string Reasons, int Priority)>();
        var reasons = new StringBuilder();
        foreach (var row in histogram.Rows)
        {
            reasons.Clear();
            var priority = ReasonOrder.Length;
            void Add(string reason)
            {
                if (reasons.Length > 0) reasons.Append(',');
                reasons.Append(reason);
                priority = Math.Min(priority, Array.IndexOf(ReasonOrder, reason));
            }

            var name = row.ClassName;
            if (name == FinalizerClass) Add("finalizer");
            if (hints.Finalizable.Contains(name)) Add("finalizer-queue");
            if (hints.FinalizerStep.Contains(name)) Add("finalizer-step");
            if (hints.TimerTasks?.Contains(name) ?? IsTimerTask(name)) Add("timer-task");
            if (IsNestedInAny(name, hints.Finalizable)) Add("nested-in-finalizable");
            if (topBytes.Contains(row)) Add("top-bytes");
            if (topInstances.Contains(row)) Add("top-instances");
            if (Watched(name)) Add("watch");
            if (reasons.Length > 0) kept.Add((row, reasons.ToString(), priority));
        }

        if (kept.Count > MaxRows)
        {
            var keep = new HashSet<ClassHistogramRow>(kept.OrderBy(k => k.Priority).ThenBy(k => k.Row.Rank).Take(MaxRows).Select(k => k.Row), ReferenceEqualityComparer.Instance);
            kept.RemoveAll(k => !keep.Contains(k.Row));
        }

        return kept.Select(k => (k.Row, k.Reasons)).ToList();
    }

    /// <summary>
    /// By name only, for a JVM that cannot list its TimerTask subclasses (JDK 8 has no VM.class_hierarchy):
    /// <c>java.util.TimerTask</c> and names starting with it, or a simple name ending in "Task".
    /// </summary>
    public static bool IsTimerTask(string className)
    {
        ArgumentNullException.ThrowIfNull(className);
        if (className.StartsWith("java.util.TimerTask", StringComparison.Ordinal)) return true;
        var simple = className[(className.LastIndexOfAny(['.', '$']) + 1)..];
        return simple.EndsWith("Task", StringComparison.Ordinal);
    }

    private static bool IsNestedInAny(string name, IReadOnlySet<string> outer)
    {
        for (var i = name.IndexOf('$', StringComparison.Ordinal); i > 0; i = name.IndexOf('$', i + 1))
        {
            if (outer.Contains(name[..i])) return true;
        }

        return false;
    }

    private bool Watched(string name)
    {
        foreach (var r in _watch)
        {
            try
            {
                if (r.IsMatch(name)) return true;
            }
            catch (RegexMatchTimeoutException)
            {
                // Over budget: treat as no match (documented).
            }
        }

        return false;
    }

    private static string GlobToRegex(string glob)
    {
        var sb = new StringBuilder();
        foreach (var c in glob)
        {
            sb.Append(c switch
            {
                '*' => ".*",
                '?' => ".",
                _ => Regex.Escape(c.ToString()),
            });
        }

        return sb.ToString();
    }
}

/// <summary>What the collector learned about one JVM that a histogram alone does not show.</summary>
/// <param name="Finalizable">Classes seen in the JVM's finalization queue (they override finalize()).</param>
/// <param name="TimerTasks">The JVM's loaded <c>java.util.TimerTask</c> subclasses, or null when unknown (then by name).</param>
/// <param name="FinalizerStep">Classes whose instances rose in step with <c>java.lang.ref.Finalizer</c>'s (<see cref="HistogramHistory"/>).</param>
public sealed record HistogramHints(IReadOnlySet<string> Finalizable, IReadOnlySet<string>? TimerTasks, IReadOnlySet<string> FinalizerStep)
{
    /// <summary>An empty set of class names.</summary>
    public static IReadOnlySet<string> NoClasses { get; } = new HashSet<string>(StringComparer.Ordinal);
}

/// <summary>
/// One JVM's instance counts between its histograms, to find the classes that rise in step with
/// <c>java.lang.ref.Finalizer</c>: finalizable objects that stay reachable (the statements of the CancelTimer
/// pattern, and the tasks that hold them) never show in the finalization queue and are often too small for any
/// top N. A class counts as in step when Finalizer grew by at least <see cref="MinFinalizerGrowth"/> and the
/// class grew by between half and twice as much; it stays remembered for <see cref="RememberedHistograms"/>
/// histograms so that its series does not break when one interval is quiet. Arrays and java.lang.ref classes
/// are left out (a leak rule cannot name them as the finalizable class). Memory: one count per class of the
/// last histogram (a few thousand entries). Not thread-safe: one JVM's request sequence owns it.
/// </summary>
public sealed class HistogramHistory
{
    /// <summary>Finalizer growth between two histograms below which nothing counts as in step (noise).</summary>
    public const long MinFinalizerGrowth = 20;

    /// <summary>Most classes remembered as in step (closest to Finalizer's growth and most recent first).</summary>
    public const int MaxInStepClasses = 32;

    /// <summary>How many histograms a class stays kept after it last grew in step.</summary>
    public const int RememberedHistograms = 6;

    private const double MinRatio = 0.5;
    private const double MaxRatio = 2.0;

    private readonly Dictionary<string, int> _inStep = new(StringComparer.Ordinal);
    private Dictionary<string, long>? _previous;
    private int _histograms;

    /// <summary>Records <paramref name="histogram"/> and returns the classes to keep as in step with Finalizer.</summary>
    public IReadOnlySet<string> Observe(ClassHistogram histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        _histograms++;
        var current = new Dictionary<string, long>(histogram.Rows.Count, StringComparer.Ordinal);
        foreach (var row in histogram.Rows)
        {
            // One name per class loader that loaded it: the counts add up.
            current[row.ClassName] = current.GetValueOrDefault(row.ClassName) + row.Instances;
        }

        if (_previous is not null)
        {
            var finalizerGrowth = current.GetValueOrDefault(HistogramSelection.FinalizerClass) - _previous.GetValueOrDefault(HistogramSelection.FinalizerClass);
            if (finalizerGrowth >= MinFinalizerGrowth)
            {
                var fresh = current
                    .Where(c => c.Key != HistogramSelection.FinalizerClass && !c.Key.StartsWith('[') && !c.Key.StartsWith("java.lang.ref.", StringComparison.Ordinal))
                    .Select(c => (Name: c.Key, Ratio: (double)(c.Value - _previous.GetValueOrDefault(c.Key)) / finalizerGrowth))
                    .Where(c => c.Ratio is >= MinRatio and <= MaxRatio)
                    .OrderBy(c => Math.Abs(Math.Log(c.Ratio)))
                    .ThenBy(c => c.Name, StringComparer.Ordinal)
                    .Take(MaxInStepClasses);
                foreach (var (name, _) in fresh) _inStep[name] = _histograms;
            }
        }

        _previous = current;
        foreach (var stale in _inStep.Where(e => _histograms - e.Value >= RememberedHistograms).Select(e => e.Key).ToList()) _inStep.Remove(stale);
        if (_inStep.Count > MaxInStepClasses)
        {
            foreach (var extra in _inStep.OrderByDescending(e => e.Value).ThenBy(e => e.Key, StringComparer.Ordinal).Skip(MaxInStepClasses).Select(e => e.Key).ToList())
                _inStep.Remove(extra);
        }

        return _inStep.Keys.ToHashSet(StringComparer.Ordinal);
    }
}
