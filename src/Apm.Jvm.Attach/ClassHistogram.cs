using System.Globalization;

namespace Apm.Jvm.Attach;

/// <summary>One class in a <c>GC.class_histogram</c>.</summary>
/// <param name="Rank">1-based position in the JVM's order (by bytes, descending).</param>
/// <param name="Instances">Live instances after the full GC the command forces.</param>
/// <param name="Bytes">Shallow bytes of those instances.</param>
/// <param name="ClassName">JVM-printed name: "java.lang.String", "[B", "Foo$$Lambda$1/0x..." for hidden classes.</param>
/// <param name="Module">"java.base@17.0.15" for classes in named modules; null for the unnamed module (application classes).</param>
public sealed record ClassHistogramRow(int Rank, long Instances, long Bytes, string ClassName, string? Module);

/// <summary>A parsed class histogram: every row plus the JVM's Total line.</summary>
public sealed record ClassHistogram(IReadOnlyList<ClassHistogramRow> Rows, long TotalInstances, long TotalBytes);

/// <summary>Parses <c>GC.class_histogram</c> output (JDK 9+ with modules, and the JDK 8 form without).</summary>
public static class ClassHistogramParser
{
    /// <summary>
    /// Parses the output; throws <see cref="FormatException"/> naming the line on anything else, including a
    /// missing Total line (a truncated answer). Linear in the input.
    /// </summary>
    public static ClassHistogram Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Split('\n');
        var i = FinalizerInfoParser.SkipPreamble(lines);
        if (i == lines.Length) throw new FormatException("GC.class_histogram output is empty");
        var header = lines[i].Trim();
        if (!header.StartsWith("num", StringComparison.Ordinal) || !header.Contains("#instances", StringComparison.Ordinal))
            throw FinalizerInfoParser.Bad(i, "expected the ' num #instances #bytes class name' header", lines[i]);
        i++;
        if (i >= lines.Length || lines[i].Trim().Length == 0 || lines[i].Trim().Trim('-').Length != 0)
            throw FinalizerInfoParser.Bad(i, "expected a line of dashes", i < lines.Length ? lines[i] : string.Empty);
        i++;

        var rows = new List<ClassHistogramRow>();
        for (; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0) continue;
            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields[0] == "Total")
            {
                if (fields.Length != 3 || !TryCount(fields[1], out var totalInstances) || !TryCount(fields[2], out var totalBytes))
                    throw FinalizerInfoParser.Bad(i, "expected 'Total <instances> <bytes>'", lines[i]);
                for (var j = i + 1; j < lines.Length; j++)
                {
                    if (lines[j].Trim().Length != 0) throw FinalizerInfoParser.Bad(j, "unexpected text after the Total line", lines[j]);
                }

                return new ClassHistogram(rows, totalInstances, totalBytes);
            }

            rows.Add(ParseRow(fields, i, lines[i]));
        }

        throw new FormatException($"line {lines.Length}: GC.class_histogram output ended without its Total line (truncated?)");
    }

    private static ClassHistogramRow ParseRow(string[] fields, int index, string line)
    {
        // "1:  42233  1689320  java.lang.ref.Finalizer (java.base@17.0.15)"; the module part is optional.
        if (fields.Length is not (4 or 5) || fields[0].Length < 2 || fields[0][^1] != ':'
            || !int.TryParse(fields[0].AsSpan(0, fields[0].Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var rank)
            || !TryCount(fields[1], out var instances) || !TryCount(fields[2], out var bytes))
        {
            throw FinalizerInfoParser.Bad(index, "expected '<rank>: <instances> <bytes> <class name> [(module)]'", line);
        }

        string? module = null;
        if (fields.Length == 5)
        {
            var m = fields[4];
            if (m.Length < 3 || m[0] != '(' || m[^1] != ')') throw FinalizerInfoParser.Bad(index, "expected '(module)' after the class name", line);
            module = m[1..^1];
        }

        return new ClassHistogramRow(rank, instances, bytes, fields[3], module);
    }

    private static bool TryCount(string s, out long value) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
