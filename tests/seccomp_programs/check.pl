# Perl: fork, pipes, sockets, select, threads, files, time.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use File::Temp qw(tempdir);
use POSIX qw(strftime :sys_wait_h);
use Config;

my $dir = tempdir(CLEANUP => 1);
open(my $fh, '>', "$dir/f") or die "open: $!";
print $fh "line $_\n" for 1 .. 100;
close $fh;
my @lines = do { open(my $in, '<', "$dir/f") or die; <$in> };
die "lines" unless @lines == 100;
my @sorted = sort { $b cmp $a } @lines;
rename("$dir/f", "$dir/g") or die "rename: $!";
mkdir("$dir/d") or die "mkdir: $!";
symlink("$dir/g", "$dir/l") or die "symlink: $!";

pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) { close $r; print $w "from child\n"; close $w; exit 3; }
close $w;
my $msg = <$r>;
waitpid($pid, 0);
die "child" unless $msg eq "from child\n" && ($? >> 8) == 3;
die "system" unless system("true") == 0;
my $out = `echo backticks`;
die "backticks" unless $out eq "backticks\n";

my $srv = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp')
    or die "listen: $!";
my $cli = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->sockport, Proto => 'tcp')
    or die "connect: $!";
my $conn = $srv->accept;
print $cli "hello\n";
my $sel = IO::Select->new($conn);
die "select" unless $sel->can_read(5);
die "recv" unless <$conn> eq "hello\n";

if ($Config{useithreads}) {
    require threads;
    my @t = map { threads->create(sub { return $_[0] * 2 }, $_) } 1 .. 4;
    my $sum = 0;
    $sum += $_->join for @t;
    die "threads" unless $sum == 20;
}
local $SIG{ALRM} = sub { };
alarm 1; alarm 0;
my $t = strftime("%Y", localtime);
select(undef, undef, undef, 0.05);
print "perl ok\n";
