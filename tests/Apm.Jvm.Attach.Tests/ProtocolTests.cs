using System.Text;
using Apm.Jvm.Attach;

namespace Apm.Jvm.Attach.Tests;

public class ProtocolTests
{
    [Fact]
    public void Request_is_version_command_and_three_nul_terminated_arguments()
    {
        var bytes = HotSpotAttachClient.EncodeRequest("jcmd", ["GC.finalizer_info"]);
        Assert.Equal("1\0jcmd\0GC.finalizer_info\0\0\0", Encoding.UTF8.GetString(bytes));
    }

    [Fact]
    public void Request_rejects_nul_long_and_too_many_arguments()
    {
        Assert.Throws<ArgumentException>(() => HotSpotAttachClient.EncodeRequest("jcmd", ["a\0b"]));
        Assert.Throws<ArgumentException>(() => HotSpotAttachClient.EncodeRequest("jcmd", [new string('x', 1025)]));
        Assert.Throws<ArgumentException>(() => HotSpotAttachClient.EncodeRequest("a-command-longer-than-16", []));
        Assert.Throws<ArgumentException>(() => HotSpotAttachClient.EncodeRequest("jcmd", ["1", "2", "3", "4"]));
    }

    [Theory]
    [InlineData("0\nhello\n", 0, "hello\n")]
    [InlineData("-1\njava.lang.IllegalArgumentException: x\n", -1, "java.lang.IllegalArgumentException: x\n")]
    [InlineData("0", 0, "")]
    public void Response_splits_status_line_and_output(string raw, int status, string output)
    {
        var r = HotSpotAttachClient.ParseResponse(42, Encoding.UTF8.GetBytes(raw));
        Assert.Equal(status, r.Status);
        Assert.Equal(output, r.Output);
    }

    [Theory]
    [InlineData("HTTP/1.1 400 Bad Request\r\n")]
    [InlineData("\u0001\u0002\n")]
    [InlineData("99999999999999999999\n")]
    [InlineData("")]
    public void Non_numeric_status_is_a_protocol_error(string raw)
    {
        var e = Assert.Throws<AttachException>(() => HotSpotAttachClient.ParseResponse(42, Encoding.UTF8.GetBytes(raw)));
        Assert.Equal(AttachFailure.ProtocolError, e.Reason);
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("0", false)]
    [InlineData("-2147483648\r", false)]
    [InlineData("0\n", true)]
    [InlineData("1\r\nsome output", true)]
    [InlineData("-2147483648\r\n", true)]
    public void Status_line_is_judged_as_soon_as_it_can_be(string received, bool complete) =>
        Assert.Equal(complete, HotSpotAttachClient.CheckStatusLine(42, Encoding.ASCII.GetBytes(received)));

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\n")]
    [InlineData("HTTP/1.1 200 OK")]
    [InlineData("0000000000000")]
    [InlineData("\n")]
    public void First_line_that_cannot_be_a_status_fails_before_the_rest_arrives(string received)
    {
        var e = Assert.Throws<AttachException>(() => HotSpotAttachClient.CheckStatusLine(42, Encoding.ASCII.GetBytes(received)));
        Assert.Equal(AttachFailure.ProtocolError, e.Reason);
        Assert.Contains("not an attach response", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_failure_kind_has_its_own_exit_code_apart_from_success_and_usage()
    {
        var codes = Enum.GetValues<AttachFailure>().Select(AttachCommand.ExitCodeOf).ToList();
        Assert.Equal(codes.Count, codes.Distinct().Count());
        Assert.DoesNotContain(AttachCommand.Ok, codes);
        Assert.DoesNotContain(AttachCommand.Usage, codes);
        Assert.DoesNotContain(AttachCommand.Cancelled, codes);
    }

    [Fact]
    public void Non_zero_status_becomes_command_failed_with_the_jvm_message()
    {
        var e = Assert.Throws<AttachException>(() => new AttachResponse(7, -1, "java.lang.IllegalArgumentException: Unknown diagnostic command\n").EnsureSuccess("Bogus.cmd"));
        Assert.Equal(AttachFailure.CommandFailed, e.Reason);
        Assert.Equal(-1, e.Status);
        Assert.Contains("Unknown diagnostic command", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errno_eperm_and_eacces_map_to_permission_denied_and_esrch_to_exited()
    {
        // A root test runner cannot provoke EPERM from kill(2) or EACCES from connect(2) against a real JVM.
        Assert.Equal(AttachFailure.PermissionDenied, HotSpotAttachClient.FailureFromErrno(5, 1, "sending SIGQUIT").Reason);
        Assert.Equal(AttachFailure.PermissionDenied, HotSpotAttachClient.FailureFromErrno(5, 13, "connecting").Reason);
        Assert.Contains("own user or root", HotSpotAttachClient.FailureFromErrno(5, 1, "sending SIGQUIT").Message, StringComparison.Ordinal);
        Assert.Equal(AttachFailure.ProcessExited, HotSpotAttachClient.FailureFromErrno(5, 3, "sending SIGQUIT").Reason);
    }

    [Fact]
    public void Status_file_gives_credentials_namespace_pid_and_signal_masks()
    {
        const string text = "Name:\tjava\nState:\tS (sleeping)\nTgid:\t5948\nUid:\t1000\t1001\t1001\t1001\nGid:\t100\t101\t101\t101\n" +
            "NStgid:\t5948\t7\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000006\nSigCgt:\t2000000181005ccf\n";
        var s = ProcessStatus.Parse(text, 5948);
        Assert.Equal(1001, s.EffectiveUid);
        Assert.Equal(101, s.EffectiveGid);
        Assert.Equal(7, s.NamespacePid);
        Assert.True(s.IgnoresSigquit);
        Assert.True(s.CatchesSigquit);
        Assert.False(s.HasExited);
        Assert.False(ProcessStatus.Parse(text.Replace("0000000000000006", "0000000000000002", StringComparison.Ordinal), 1).IgnoresSigquit);
        Assert.True(ProcessStatus.Parse(text.Replace("S (sleeping)", "Z (zombie)", StringComparison.Ordinal), 1).HasExited);
        Assert.Throws<FormatException>(() => ProcessStatus.Parse("Name:\tx\n", 1));
    }

    [Theory]
    [InlineData("java -XX:+DisableAttachMechanism Foo", true)]
    [InlineData("java -XX:+DisableAttachMechanism -XX:-DisableAttachMechanism Foo", false)]
    [InlineData("java Foo", null)]
    public void Last_boolean_flag_wins(string options, bool? expected) =>
        Assert.Equal(expected, HotSpotAttachClient.LastBooleanFlag(options, "DisableAttachMechanism"));

    [Fact]
    public void Capabilities_parser_rejects_garbage_without_throwing()
    {
        var random = new Random(7);
        var buffer = new byte[4096];
        for (var i = 0; i < 200; i++)
        {
            random.NextBytes(buffer);
            // Valid magic so that the entry walk runs over random offsets.
            buffer[0] = 0xCA; buffer[1] = 0xFE; buffer[2] = 0xC0; buffer[3] = 0xC0; buffer[4] = (byte)(i % 2);
            _ = JvmCapabilities.TryParseAttachSupported(buffer);
        }

        Assert.Null(JvmCapabilities.TryParseAttachSupported(new byte[8]));
    }
}
