using System.Globalization;

namespace Apm.Jvm.Attach;

/// <summary>The finalization queue of a JVM: objects found unreachable and waiting for the Finalizer thread.</summary>
/// <param name="PendingTotal">Sum of the per-class counts: the queue's length when the command ran.</param>
/// <param name="Classes">Count per class, in the JVM's order (largest first); empty when the queue is empty.</param>
public sealed record FinalizerInfo(long PendingTotal, IReadOnlyList<(string ClassName, long Count)> Classes);

/// <summary>Parses the text of <c>GC.finalizer_info</c> (JDK 9+), from the attach socket or from jcmd.</summary>
public static class FinalizerInfoParser
{
    private const string EmptyQueue = "No instances waiting for finalization found";
    private const string Title = "Unreachable instances waiting for finalization";

    /// <summary>
    /// Parses the output; throws <see cref="FormatException"/> naming the line when the text is not that
    /// command's output. Linear in the input; a leading "&lt;pid&gt;:" line (as jcmd prints) is skipped.
    /// </summary>
    public static FinalizerInfo Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Split('\n');
        var i = SkipPreamble(lines);
        if (i == lines.Length) throw new FormatException("GC.finalizer_info output is empty");

        var first = lines[i].Trim();
        if (first == EmptyQueue)
        {
            EnsureRestBlank(lines, i + 1);
            return new FinalizerInfo(0, []);
        }

        if (first != Title) throw Bad(i, $"expected '{Title}' or '{EmptyQueue}'", lines[i]);
        i++;
        if (i >= lines.Length || !lines[i].Trim().StartsWith("#instances", StringComparison.Ordinal))
            throw Bad(i, "expected the '#instances  class name' header", i < lines.Length ? lines[i] : string.Empty);
        i++;
        if (i >= lines.Length || lines[i].Trim().Length == 0 || lines[i].Trim().Trim('-').Length != 0)
            throw Bad(i, "expected a line of dashes", i < lines.Length ? lines[i] : string.Empty);
        i++;

        var classes = new List<(string ClassName, long Count)>();
        long total = 0;
        for (; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0) continue;
            var fields = line.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length != 2 || !long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var count))
                throw Bad(i, "expected '<count> <class name>'", lines[i]);
            checked
            {
                try
                {
                    total += count;
                }
                catch (OverflowException)
                {
                    throw Bad(i, "counts overflow a 64-bit total", lines[i]);
                }
            }

            classes.Add((fields[1], count));
        }

        return new FinalizerInfo(total, classes);
    }

    /// <summary>Skips blank lines and a "&lt;pid&gt;:" line that jcmd prints before the output.</summary>
    internal static int SkipPreamble(string[] lines)
    {
        var i = 0;
        while (i < lines.Length)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || (line.EndsWith(':') && line.Length > 1 && line[..^1].All(char.IsAsciiDigit))) i++;
            else break;
        }

        return i;
    }

    private static void EnsureRestBlank(string[] lines, int from)
    {
        for (var j = from; j < lines.Length; j++)
        {
            if (lines[j].Trim().Length != 0) throw Bad(j, "unexpected text after the empty-queue message", lines[j]);
        }
    }

    internal static FormatException Bad(int index, string what, string line)
    {
        var shown = line.Length > 120 ? line[..120] + "..." : line;
        return new FormatException($"line {index + 1}: {what}; got '{shown.TrimEnd('\r')}'");
    }
}
