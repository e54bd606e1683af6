using Apm.Jvm.Attach;

namespace Apm.Jvm.Attach.Tests;

public class ParserTests
{
    // Verbatim from jcmd on OpenJDK 17.0.15 against tests/fixtures/java/SlowFinalizer.java.
    private const string FinalizerTable =
        "Unreachable instances waiting for finalization\n#instances  class name\n-----------------------\n      9271  SlowFinalizerResource\n        12  sun.nio.ch.FileChannelImpl\n";

    private const string Histogram =
        " num     #instances         #bytes  class name (module)\n" +
        "-------------------------------------------------------\n" +
        "   1:         42233        1689320  java.lang.ref.Finalizer (java.base@17.0.15)\n" +
        "   2:         42233        1013592  SlowFinalizerResource\n" +
        " 221:             1             16  SlowFinalizer$$Lambda$1/0x00007f5b8c000a08\n" +
        "Total        109087        3879408\n";

    [Fact]
    public void Finalizer_table_gives_classes_and_their_sum()
    {
        var info = FinalizerInfoParser.Parse(FinalizerTable);
        Assert.Equal(9283, info.PendingTotal);
        Assert.Equal([("SlowFinalizerResource", 9271L), ("sun.nio.ch.FileChannelImpl", 12L)], info.Classes);
    }

    [Fact]
    public void Empty_queue_message_gives_zero_and_no_classes()
    {
        var info = FinalizerInfoParser.Parse("No instances waiting for finalization found\n");
        Assert.Equal(0, info.PendingTotal);
        Assert.Empty(info.Classes);
    }

    [Fact]
    public void Jcmd_pid_line_before_the_output_is_skipped()
    {
        var info = FinalizerInfoParser.Parse("5948:\n" + FinalizerTable);
        Assert.Equal(9283, info.PendingTotal);
        Assert.Equal(42233, ClassHistogramParser.Parse("5948:\n" + Histogram).Rows[0].Instances);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("HTTP/1.1 200 OK\n", "line 1")]
    [InlineData("Unreachable instances waiting for finalization\n#instances  class name\n-----\n  12x  Foo\n", "line 4")]
    [InlineData("Unreachable instances waiting for finalization\n#instances  class name\n-----\n  12  Foo Bar\n", "line 4")]
    [InlineData("Unreachable instances waiting for finalization\nbogus\n", "line 2")]
    [InlineData("No instances waiting for finalization found\nmore\n", "line 2")]
    [InlineData("Unreachable instances waiting for finalization\n#instances  class name\n-----\n  9223372036854775807  A\n  1  B\n", "line 5")]
    public void Finalizer_garbage_throws_a_format_exception_naming_the_line(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => FinalizerInfoParser.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Histogram_rows_keep_rank_counts_name_and_module()
    {
        var h = ClassHistogramParser.Parse(Histogram);
        Assert.Equal(3, h.Rows.Count);
        Assert.Equal(new ClassHistogramRow(1, 42233, 1689320, "java.lang.ref.Finalizer", "java.base@17.0.15"), h.Rows[0]);
        Assert.Equal(new ClassHistogramRow(2, 42233, 1013592, "SlowFinalizerResource", null), h.Rows[1]);
        Assert.Equal("SlowFinalizer$$Lambda$1/0x00007f5b8c000a08", h.Rows[2].ClassName);
        Assert.Equal(109087, h.TotalInstances);
        Assert.Equal(3879408, h.TotalBytes);
    }

    [Fact]
    public void Jdk8_histogram_without_modules_parses()
    {
        var h = ClassHistogramParser.Parse(" num     #instances         #bytes  class name\n----------------------------------------------\n   1:          5          80  [C\nTotal          5          80\n");
        Assert.Equal(new ClassHistogramRow(1, 5, 80, "[C", null), Assert.Single(h.Rows));
    }

    [Theory]
    [InlineData("garbage\n", "line 1")]
    [InlineData(" num     #instances         #bytes  class name (module)\n-----\n   1:  5  80\nTotal 5 80\n", "line 3")]
    [InlineData(" num     #instances         #bytes  class name (module)\n-----\n   1:  5  80  A  module\nTotal 5 80\n", "line 3")]
    [InlineData(" num     #instances         #bytes  class name (module)\n-----\n   1:  5  80  A\n", "Total")]
    [InlineData(" num     #instances         #bytes  class name (module)\n-----\nTotal 5 80\nextra\n", "line 4")]
    public void Histogram_garbage_or_truncation_throws_a_format_exception(string text, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ClassHistogramParser.Parse(text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parsers_given_mutated_input_either_parse_or_throw_format_exceptions_fixed_seed()
    {
        var random = new Random(20261121);
        var alphabet = "0123456789 :\n\r\t-()#$/abcXYZ\0é".ToCharArray();
        var parsedFinalizer = 0;
        var parsedHistogram = 0;
        for (var iteration = 0; iteration < 5000; iteration++)
        {
            foreach (var seed in new[] { FinalizerTable, Histogram })
            {
                var chars = seed.ToCharArray().ToList();
                var edits = random.Next(1, 4);
                for (var e = 0; e < edits; e++)
                {
                    var at = random.Next(chars.Count);
                    switch (random.Next(3))
                    {
                        case 0: chars[at] = alphabet[random.Next(alphabet.Length)]; break;
                        case 1: chars.RemoveAt(at); break;
                        default: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                    }
                }

                var text = new string([.. chars]);
                try
                {
                    var info = FinalizerInfoParser.Parse(text);
                    Assert.Equal(info.Classes.Sum(c => c.Count), info.PendingTotal);
                    parsedFinalizer++;
                }
                catch (FormatException)
                {
                }

                try
                {
                    var h = ClassHistogramParser.Parse(text);
                    Assert.All(h.Rows, r => Assert.False(string.IsNullOrWhiteSpace(r.ClassName)));
                    parsedHistogram++;
                }
                catch (FormatException)
                {
                }
            }
        }

        // Some mutations (e.g. a digit changed) still parse: the fuzzing exercised both outcomes.
        Assert.InRange(parsedFinalizer, 1, 9999);
        Assert.InRange(parsedHistogram, 1, 9999);
    }
}
