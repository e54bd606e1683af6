using Apm.Jvm.Attach;

namespace Apm.Jvm.Attach.Tests;

/// <summary>The argument handling of <c>apm attach</c> (its runs against real JVMs are in Apm.EndToEnd.Tests).</summary>
public class AttachCommandTests
{
    [Theory]
    [InlineData(new string[0], "usage: apm attach")]
    [InlineData(new[] { "1234" }, "usage: apm attach")]
    [InlineData(new[] { "GC.finalizer_info" }, "usage: apm attach")]
    [InlineData(new[] { "0", "GC.finalizer_info" }, "usage: apm attach")]
    [InlineData(new[] { "-5", "GC.finalizer_info" }, "usage: apm attach")]
    [InlineData(new[] { "--timeout", "1234", "GC.finalizer_info" }, "usage: apm attach")]
    [InlineData(new[] { "--timeout", "0", "1234", "GC.finalizer_info" }, "--timeout takes a positive number of seconds")]
    [InlineData(new[] { "--timeout", "soon", "1234", "GC.finalizer_info" }, "--timeout takes a positive number of seconds")]
    [InlineData(new[] { "--timeout" }, "--timeout takes a positive number of seconds")]
    public async Task Bad_arguments_exit_with_the_usage_code_and_say_why(string[] args, string message)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(AttachCommand.Usage, await AttachCommand.RunAsync(args, stdout, stderr, default));
        Assert.Contains(message, stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal("", stdout.ToString());
    }

    [Fact]
    public async Task Command_line_longer_than_hotspot_accepts_is_a_usage_error_before_any_process_is_touched()
    {
        var stderr = new StringWriter();
        var code = await AttachCommand.RunAsync([Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), "GC.heap_dump", new string('x', 1100)],
            new StringWriter(), stderr, default);
        Assert.Equal(AttachCommand.Usage, code);
        Assert.Contains("HotSpot accepts at most 1024", stderr.ToString(), StringComparison.Ordinal);
    }
}
