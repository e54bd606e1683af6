using System.Text;
using System.Text.RegularExpressions;
using Apm.Jvm.Attach;

namespace Apm.Collector;

/// <summary>
/// Chooses the class-histogram rows worth sending. A histogram has thousands of rows; the leak patterns need
/// only a few: <c>java.lang.ref.Finalizer</c> (objects registered for finalization), classes seen in the
/// JVM's finalization queue (they override finalize()), classes nested in those (an anonymous TimerTask of a
/// statement class is <c>Statement$1</c>), timer tasks by name (<c>java.util.TimerTask*</c> or a simple name
/// ending in <c>Task</c>: class names are all a histogram shows, superclasses are not), classes matching the
/// watch patterns, and the top N by bytes.
/// </summary>
public sealed class HistogramSelection
{
    /// <summary>The JVM's class whose instance count is the number of objects registered for finalization.</summary>
    public const string FinalizerClass = "java.lang.ref.Finalizer";

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

    /// <summary>
    /// The kept rows with why each was kept (comma-separated reasons), in the histogram's order.
    /// <paramref name="finalizableClasses"/> are classes seen in this JVM's finalization queue.
    /// </summary>
    public IReadOnlyList<(ClassHistogramRow Row, string Reasons)> Select(ClassHistogram histogram, IReadOnlySet<string> finalizableClasses)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        ArgumentNullException.ThrowIfNull(finalizableClasses);
        var top = new HashSet<ClassHistogramRow>(histogram.Rows.OrderByDescending(r => r.Bytes).ThenBy(r => r.Rank).Take(_topN), ReferenceEqualityComparer.Instance);
        var kept = new List<(ClassHistogramRow, string)>();
        var reasons = new StringBuilder();
        foreach (var row in histogram.Rows)
        {
            reasons.Clear();
            var name = row.ClassName;
            if (name == FinalizerClass) Add(reasons, "finalizer");
            if (finalizableClasses.Contains(name)) Add(reasons, "finalizer-queue");
            if (IsNestedInAny(name, finalizableClasses)) Add(reasons, "nested-in-finalizable");
            if (IsTimerTask(name)) Add(reasons, "timer-task");
            if (Watched(name)) Add(reasons, "watch");
            if (top.Contains(row)) Add(reasons, "top-bytes");
            if (reasons.Length > 0) kept.Add((row, reasons.ToString()));
        }

        return kept;
    }

    /// <summary>By name only: <c>java.util.TimerTask</c> and names starting with it, or a simple name ending in "Task".</summary>
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

    private static void Add(StringBuilder sb, string reason)
    {
        if (sb.Length > 0) sb.Append(',');
        sb.Append(reason);
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
