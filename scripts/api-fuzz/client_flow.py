"""A booking and a check-in through the client openapi-python-client generated.

Usage: client_flow.py BASE_URL GYMAPI_BINARY, with the generated package on PYTHONPATH.
"""

import datetime
import subprocess
import sys

from client import AuthenticatedClient
from client.api.attendance import check_in, my_qr
from client.api.gyms import add_member, create_gym
from client.api.schedule import create_class, create_session, participants, register
from client.api.users import me
from client.models import CheckInIn, ClassIn, GymIn, MemberIn, MemberInRole, RegisterIn, SessionIn

BASE, BIN = sys.argv[1], sys.argv[2]


def token(sub):
    return subprocess.run([BIN, "token", "--sub", sub], check=True, capture_output=True, text=True).stdout.strip()


def ok(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    return response.parsed


owner = AuthenticatedClient(base_url=BASE, token=token("client-owner"), raise_on_unexpected_status=True)
member = AuthenticatedClient(base_url=BASE, token=token("client-member"), raise_on_unexpected_status=True)

gym = ok(create_gym.sync_detailed(client=owner, body=GymIn(name="Client Gym")), 201)
member_id = ok(me.sync_detailed(client=member), 200).id
ok(add_member.sync_detailed(client=owner, x_gym_id=gym.id, body=MemberIn(user_id=member_id, role=MemberInRole.MEMBER)), 201)
klass = ok(create_class.sync_detailed(client=owner, x_gym_id=gym.id, body=ClassIn(name="Yoga", duration_minutes=60, max_capacity=5)), 201)
start = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)).replace(microsecond=0)
session = ok(create_session.sync_detailed(client=owner, x_gym_id=gym.id, body=SessionIn(class_id=klass.id, start_time=start)), 201)

# The body is optional (issue 19's waitlist flag); openapi-python-client 0.29 cannot
# send an optional body left unset, so the generated client is given one.
booked = ok(register.sync_detailed(id=session.id, client=member, x_gym_id=gym.id, body=RegisterIn()), 201)
assert booked.status.value == "registered", booked
qr = ok(my_qr.sync_detailed(client=member, x_gym_id=gym.id), 200).qr_code
done = ok(check_in.sync_detailed(client=owner, x_gym_id=gym.id, body=CheckInIn(qr_code=qr)), 200)
assert done.success and done.session.id == session.id and not done.new_participation, done
again = check_in.sync_detailed(client=owner, x_gym_id=gym.id, body=CheckInIn(qr_code=qr))
assert again.status_code == 400, again
people = ok(participants.sync_detailed(id=session.id, client=owner, x_gym_id=gym.id), 200)
assert [p.status.value for p in people] == ["attended"], people
print("client flow: booked, checked in once, refused the second scan")
