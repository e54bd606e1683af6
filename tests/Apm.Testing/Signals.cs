using System.Runtime.InteropServices;

namespace Apm.Testing;

/// <summary>POSIX signals to a process (Linux x86-64 and arm64 numbers).</summary>
public static partial class Signals
{
    /// <summary>SIGTERM: asks a service to stop.</summary>
    public const int Term = 15;

    /// <summary>SIGCONT.</summary>
    public const int Cont = 18;

    /// <summary>SIGSTOP.</summary>
    public const int Stop = 19;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; throws with errno when kill(2) fails.</summary>
    public static void Send(int pid, int signal)
    {
        if (SysKill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);
}
